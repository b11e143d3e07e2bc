//! Verifying provider webhooks: Amazon SNS message signatures (SignatureVersion 1: SHA1withRSA,
//! 2: SHA256withRSA, over the canonical string of the message's fields, with the X.509 signing
//! certificate), SendGrid's Signed Event Webhook (ECDSA P-256 / SHA-256 over timestamp + body),
//! Mailgun's HMAC-SHA256 of timestamp + token, and HTTP basic credentials for Postmark, compared
//! in constant time. Pure functions: no I/O, no clock (the caller passes `now`).

use base64::Engine;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePublicKey;
use rsa::pkcs1v15;
use rsa::RsaPublicKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a webhook request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No credentials or signature at all (401).
    #[error("missing {0}")]
    Missing(&'static str),
    /// A signature or credential that does not verify, a stale or replayed request, a
    /// certificate from elsewhere (403).
    #[error("{0}")]
    Forged(String),
    /// Not a request this endpoint understands (400).
    #[error("bad request: {0}")]
    Bad(String),
}

fn forged(why: impl Into<String>) -> Rejected {
    Rejected::Forged(why.into())
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

// ---------------------------------------------------------------------------------------------
// Amazon SNS

/// An SNS HTTP(S) message (Notification, SubscriptionConfirmation, UnsubscribeConfirmation).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    #[serde(default)]
    pub token: Option<String>,
    pub topic_arn: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    #[serde(rename = "SubscribeURL", default)]
    pub subscribe_url: Option<String>,
}

/// The canonical string SNS signs: `Name\nvalue\n` for the type's fields, in this order.
pub fn sns_string_to_sign(m: &SnsMessage) -> Result<String, Rejected> {
    let mut out = String::new();
    let mut add = |name: &str, value: &str| {
        out.push_str(name);
        out.push('\n');
        out.push_str(value);
        out.push('\n');
    };
    match m.kind.as_str() {
        "Notification" => {
            add("Message", &m.message);
            add("MessageId", &m.message_id);
            if let Some(s) = &m.subject {
                add("Subject", s);
            }
            add("Timestamp", &m.timestamp);
            add("TopicArn", &m.topic_arn);
            add("Type", &m.kind);
        }
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
            let (Some(url), Some(token)) = (&m.subscribe_url, &m.token) else {
                return Err(Rejected::Bad(format!(
                    "{} without SubscribeURL or Token",
                    m.kind
                )));
            };
            add("Message", &m.message);
            add("MessageId", &m.message_id);
            add("SubscribeURL", url);
            add("Timestamp", &m.timestamp);
            add("Token", token);
            add("TopicArn", &m.topic_arn);
            add("Type", &m.kind);
        }
        other => return Err(Rejected::Bad(format!("SNS message type '{other}'"))),
    }
    Ok(out)
}

/// Whether a SigningCertURL (or SubscribeURL) may be trusted: `https://sns.<region>.amazonaws.com/…`
/// (`.amazonaws.com.cn` in China), no user info, no port, nothing else.
pub fn sns_url_allowed(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.contains(['@', ':']) || !rest[host.len()..].starts_with('/') {
        return false;
    }
    let host = host.to_ascii_lowercase();
    let region = host
        .strip_prefix("sns.")
        .and_then(|h| {
            h.strip_suffix(".amazonaws.com")
                .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
        })
        .unwrap_or_default();
    !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The RSA key of a PEM signing certificate.
pub fn sns_certificate_key(pem: &str) -> Result<RsaPublicKey, Rejected> {
    use x509_cert::der::referenced::OwnedToRef;
    use x509_cert::der::DecodePem;
    let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes())
        .map_err(|e| forged(format!("the signing certificate cannot be read: {e}")))?;
    RsaPublicKey::try_from(cert.tbs_certificate.subject_public_key_info.owned_to_ref())
        .map_err(|e| forged(format!("the signing certificate has no RSA key: {e}")))
}

/// Verifies an SNS message's signature with the signing certificate's key.
pub fn verify_sns(m: &SnsMessage, key: &RsaPublicKey) -> Result<(), Rejected> {
    if !sns_url_allowed(&m.signing_cert_url) {
        return Err(forged(format!(
            "SigningCertURL '{}' is not an https URL on sns.<region>.amazonaws.com",
            m.signing_cert_url
        )));
    }
    let text = sns_string_to_sign(m)?;
    let sig = B64
        .decode(m.signature.trim())
        .map_err(|_| forged("the SNS signature is not base64"))?;
    let sig = pkcs1v15::Signature::try_from(sig.as_slice())
        .map_err(|_| forged("the SNS signature is malformed"))?;
    let ok = match m.signature_version.as_str() {
        "1" => pkcs1v15::VerifyingKey::<sha1::Sha1>::new(key.clone())
            .verify(text.as_bytes(), &sig)
            .is_ok(),
        "2" => pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
            .verify(text.as_bytes(), &sig)
            .is_ok(),
        v => return Err(forged(format!("SNS SignatureVersion '{v}'"))),
    };
    if ok {
        Ok(())
    } else {
        Err(forged("the SNS signature does not verify"))
    }
}

// ---------------------------------------------------------------------------------------------
// SendGrid

/// SendGrid's verification key: base64 DER (SubjectPublicKeyInfo), as its settings page shows
/// it, or the same in PEM.
pub fn sendgrid_key(text: &str) -> Result<p256::ecdsa::VerifyingKey, String> {
    let t = text.trim();
    let key = if t.starts_with("-----BEGIN") {
        p256::PublicKey::from_public_key_pem(t).map_err(|e| e.to_string())?
    } else {
        let der = B64
            .decode(t.split_whitespace().collect::<String>())
            .map_err(|_| "not base64".to_string())?;
        p256::PublicKey::from_public_key_der(&der).map_err(|e| e.to_string())?
    };
    Ok(p256::ecdsa::VerifyingKey::from(key))
}

/// Verifies the `X-Twilio-Email-Event-Webhook-Signature` (base64 DER ECDSA) over the
/// `X-Twilio-Email-Event-Webhook-Timestamp` followed by the raw body.
pub fn verify_sendgrid(
    key: &p256::ecdsa::VerifyingKey,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), Rejected> {
    let ts = timestamp.ok_or(Rejected::Missing("the SendGrid timestamp header"))?;
    let sig = signature.ok_or(Rejected::Missing("the SendGrid signature header"))?;
    let der = B64
        .decode(sig.trim())
        .map_err(|_| forged("the SendGrid signature is not base64"))?;
    let sig = p256::ecdsa::Signature::from_der(&der)
        .map_err(|_| forged("the SendGrid signature is malformed"))?;
    let mut signed = Vec::with_capacity(ts.len() + body.len());
    signed.extend_from_slice(ts.as_bytes());
    signed.extend_from_slice(body);
    key.verify(&signed, &sig)
        .map_err(|_| forged("the SendGrid signature does not verify"))
}

// ---------------------------------------------------------------------------------------------
// Mailgun

/// How old a Mailgun signature may be (and how far in the future), in seconds.
pub const MAILGUN_MAX_AGE_S: i64 = 300;

/// Verifies a Mailgun signature: hex HMAC-SHA256 of `timestamp + token` with the signing key,
/// and a timestamp within [`MAILGUN_MAX_AGE_S`] of `now`. (Replays are the caller's business:
/// it remembers the tokens it has seen for that long.)
pub fn verify_mailgun(
    key: &[u8],
    timestamp: &str,
    token: &str,
    signature: &str,
    now: i64,
) -> Result<(), Rejected> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| forged("the Mailgun timestamp is not a number"))?;
    let sig =
        hex_decode(signature.trim()).ok_or_else(|| forged("the Mailgun signature is not hex"))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|_| forged("unusable Mailgun signing key"))?;
    mac.update(timestamp.trim().as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| forged("the Mailgun signature does not verify"))?;
    if (now - ts).abs() > MAILGUN_MAX_AGE_S {
        return Err(forged(format!(
            "the Mailgun timestamp is {} s from now (at most {MAILGUN_MAX_AGE_S})",
            now - ts
        )));
    }
    Ok(())
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Postmark

/// Checks an `Authorization: Basic …` header against the configured user and password, in
/// constant time (both compared as SHA-256 digests, so neither length leaks).
pub fn verify_basic(header: Option<&str>, user: &str, password: &str) -> Result<(), Rejected> {
    let h = header.ok_or(Rejected::Missing("HTTP basic credentials"))?;
    let Some(b64) = h
        .trim()
        .strip_prefix("Basic ")
        .or_else(|| h.trim().strip_prefix("basic "))
    else {
        return Err(Rejected::Missing("HTTP basic credentials"));
    };
    let decoded = B64
        .decode(b64.trim())
        .map_err(|_| forged("the basic credentials are not base64"))?;
    let given = Sha256::digest(&decoded);
    let want = Sha256::digest(format!("{user}:{password}").as_bytes());
    if bool::from(given.as_slice().ct_eq(want.as_slice())) {
        Ok(())
    } else {
        Err(forged("wrong credentials"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_certificate_urls_are_checked() {
        for ok in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.eu-west-2.amazonaws.com/x.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
        ] {
            assert!(sns_url_allowed(ok), "{ok}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://s3.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://sns.us_east.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com",
        ] {
            assert!(!sns_url_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn sns_canonical_strings() {
        let mut m = SnsMessage {
            kind: "Notification".into(),
            message_id: "id".into(),
            token: None,
            topic_arn: "arn".into(),
            subject: None,
            message: "hello".into(),
            timestamp: "t".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subscribe_url: None,
        };
        assert_eq!(
            sns_string_to_sign(&m).expect("ok"),
            "Message\nhello\nMessageId\nid\nTimestamp\nt\nTopicArn\narn\nType\nNotification\n"
        );
        m.subject = Some("s".into());
        assert!(sns_string_to_sign(&m)
            .expect("ok")
            .contains("MessageId\nid\nSubject\ns\nTimestamp"));
        m.kind = "SubscriptionConfirmation".into();
        assert!(matches!(sns_string_to_sign(&m), Err(Rejected::Bad(_))));
        m.subscribe_url = Some("u".into());
        m.token = Some("k".into());
        assert_eq!(
            sns_string_to_sign(&m).expect("ok"),
            "Message\nhello\nMessageId\nid\nSubscribeURL\nu\nTimestamp\nt\nToken\nk\nTopicArn\narn\nType\nSubscriptionConfirmation\n"
        );
    }

    #[test]
    fn mailgun_signatures() {
        let key = b"key-test";
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
        mac.update(b"1000tok");
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(verify_mailgun(key, "1000", "tok", &sig, 1100), Ok(()));
        assert!(matches!(
            verify_mailgun(key, "1000", "tok", &sig, 1000 + MAILGUN_MAX_AGE_S + 1),
            Err(Rejected::Forged(_))
        ));
        assert!(verify_mailgun(key, "1000", "tok2", &sig, 1100).is_err());
        assert!(verify_mailgun(b"other", "1000", "tok", &sig, 1100).is_err());
        assert!(verify_mailgun(key, "1000", "tok", "zz", 1100).is_err());
        assert!(verify_mailgun(key, "x", "tok", &sig, 1100).is_err());
    }

    #[test]
    fn basic_credentials() {
        let h = format!("Basic {}", B64.encode("pm:secret"));
        assert_eq!(verify_basic(Some(&h), "pm", "secret"), Ok(()));
        assert!(matches!(
            verify_basic(Some(&h), "pm", "secreT"),
            Err(Rejected::Forged(_))
        ));
        assert!(matches!(
            verify_basic(None, "pm", "secret"),
            Err(Rejected::Missing(_))
        ));
        assert!(matches!(
            verify_basic(Some("Bearer x"), "pm", "secret"),
            Err(Rejected::Missing(_))
        ));
    }
}
