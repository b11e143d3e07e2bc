//! Building the MIME message of one send: `multipart/alternative` (text, then HTML, UTF-8), our
//! own Message-ID, Date, From/Reply-To from the configuration, RFC 8058 one-click unsubscribe
//! (`List-Unsubscribe` with https and mailto, `List-Unsubscribe-Post`), the campaign id header
//! and optional DKIM covering them. The envelope sender is the From address, or the send's own
//! signed return path (`bounces+<token>@<bounce domain>`, VERP) when the [`Identity`] has a bounce
//! domain, so every bounce names its send. Every data value that reaches a header is validated or
//! encoded: no header injection.

use std::time::SystemTime;

use lettre::address::Envelope;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;

/// An email address (validated).
pub use lettre::Address;

use crate::error::MailerError;
use crate::templates::{clean_subject, Rendered};

/// Header naming the campaign of a message.
pub const CAMPAIGN_HEADER: &str = "X-Retain-Campaign";

/// The campaign again as Postmark message metadata (`retain_campaign`): Postmark's webhooks do not
/// return the Message-ID, only the recipient and the metadata, so this is how their bounce and
/// complaint events find their send. Other servers ignore it.
pub const POSTMARK_CAMPAIGN_HEADER: &str = "X-PM-Metadata-retain_campaign";

/// Who sends: From, Reply-To and the domain of Message-IDs.
#[derive(Debug, Clone)]
pub struct Identity {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// The From address's domain.
    pub domain: String,
    /// `sending.bounce_domain`: per-message return paths at this domain; `None`: the envelope
    /// sender is the From address.
    pub bounce_domain: Option<String>,
}

fn header_err(field: &str, message: impl Into<String>) -> MailerError {
    MailerError::Header {
        field: field.to_string(),
        message: message.into(),
    }
}

fn mailbox(field: &str, s: &str) -> Result<Mailbox, MailerError> {
    if s.chars().any(|c| c.is_control()) {
        return Err(header_err(field, "control characters are not allowed"));
    }
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| header_err(field, format!("'{s}' is not a valid address: {e}")))
}

impl Identity {
    /// From `sender.from` ("Name <addr>" or "addr") and `sender.reply_to` (may be empty).
    pub fn new(from: &str, reply_to: &str) -> Result<Self, MailerError> {
        let from = mailbox("sender.from", from)?;
        let reply_to = if reply_to.trim().is_empty() {
            None
        } else {
            Some(mailbox("sender.reply_to", reply_to)?)
        };
        let domain = from.email.domain().to_string();
        Ok(Self {
            from,
            reply_to,
            domain,
            bounce_domain: None,
        })
    }

    /// Per-message return paths at `domain` (empty: none). The domain must be a plain host name.
    pub fn with_bounce_domain(mut self, domain: &str) -> Result<Self, MailerError> {
        let d = domain.trim().to_ascii_lowercase();
        if d.is_empty() {
            self.bounce_domain = None;
            return Ok(self);
        }
        let ok = d.contains('.')
            && d.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !ok {
            return Err(header_err(
                "sending.bounce_domain",
                format!("'{}' is not a domain name", domain.escape_debug()),
            ));
        }
        self.bounce_domain = Some(d);
        Ok(self)
    }

    /// A fresh, globally unique Message-ID at the sender's domain.
    pub fn new_message_id(&self) -> String {
        format!("<{}@{}>", uuid::Uuid::new_v4().simple(), self.domain)
    }
}

/// DKIM signing settings.
pub struct Dkim {
    config: DkimConfig,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dkim { .. }")
    }
}

impl Dkim {
    /// An RSA (PKCS#1 PEM) or Ed25519 (base64) private key, selector and signing domain. The
    /// signature covers From, To, Subject, Date, Message-ID, the List-Unsubscribe headers and
    /// the campaign header.
    pub fn new(
        selector: &str,
        domain: &str,
        private_key: &str,
        ed25519: bool,
    ) -> Result<Self, MailerError> {
        let algorithm = if ed25519 {
            DkimSigningAlgorithm::Ed25519
        } else {
            DkimSigningAlgorithm::Rsa
        };
        let key = DkimSigningKey::new(private_key.trim(), algorithm)
            .map_err(|e| MailerError::Config(format!("DKIM private key: {e}")))?;
        let headers = [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            CAMPAIGN_HEADER,
        ]
        .into_iter()
        .map(HeaderName::new_from_ascii_str)
        .collect();
        Ok(Self {
            config: DkimConfig::new(
                selector.to_string(),
                domain.to_string(),
                key,
                headers,
                DkimCanonicalization {
                    header: DkimCanonicalizationType::Relaxed,
                    body: DkimCanonicalizationType::Relaxed,
                },
            ),
        })
    }
}

/// A message ready for the transport.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub send_id: i64,
    /// Recipient address.
    pub to: String,
    pub message_id: String,
    pub envelope: Envelope,
    /// The RFC 5322 message, CRLF line ends.
    pub raw: Vec<u8>,
}

/// What goes into the headers of one send, besides the [`Identity`].
#[derive(Debug, Clone, Copy)]
pub struct Addressing<'a> {
    pub campaign_id: &'a str,
    pub send_id: i64,
    pub message_id: &'a str,
    pub to_email: &'a str,
    pub to_name: Option<&'a str>,
    pub unsubscribe_url: &'a str,
    /// The envelope sender (MAIL FROM) when it is not the From address: the send's return path.
    pub return_path: Option<&'a str>,
}

fn check_message_id(id: &str) -> Result<(), MailerError> {
    let inner = id
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .ok_or_else(|| header_err("Message-ID", format!("'{id}' must be <local@domain>")))?;
    let ok = inner.split('@').count() == 2
        && inner
            .chars()
            .all(|c| c.is_ascii_graphic() && !"<>\"\\()[],;:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(header_err(
            "Message-ID",
            format!("'{id}' must be <local@domain>"),
        ))
    }
}

fn check_token(field: &str, v: &str) -> Result<(), MailerError> {
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
    {
        return Err(header_err(
            field,
            format!("'{v}' may contain only letters, digits, '.', '_', ':' and '-'"),
        ));
    }
    Ok(())
}

fn check_url(field: &str, v: &str) -> Result<(), MailerError> {
    if !(v.starts_with("https://") || v.starts_with("http://"))
        || v.chars()
            .any(|c| !c.is_ascii_graphic() || "<>\"'\\`".contains(c))
    {
        return Err(header_err(
            field,
            format!("'{v}' is not a plain http(s) URL"),
        ));
    }
    Ok(())
}

/// Builds and formats one message.
pub fn compose(
    identity: &Identity,
    a: &Addressing<'_>,
    rendered: &Rendered,
    dkim: Option<&Dkim>,
    date: SystemTime,
) -> Result<OutgoingMessage, MailerError> {
    check_message_id(a.message_id)?;
    check_token(CAMPAIGN_HEADER, a.campaign_id)?;
    check_url("List-Unsubscribe", a.unsubscribe_url)?;
    if a.to_email
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(header_err(
            "To",
            format!("'{}' is not a valid address", a.to_email.escape_debug()),
        ));
    }
    let to_addr: Address = a.to_email.parse().map_err(|e| {
        header_err(
            "To",
            format!("'{}' is not a valid address: {e}", a.to_email),
        )
    })?;
    // Names are data: drop control characters, lettre quotes or encodes the rest.
    let to_name = a
        .to_name
        .map(|n| {
            n.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|n| !n.is_empty());
    let to = Mailbox::new(to_name, to_addr.clone());
    let subject = clean_subject(&rendered.subject);
    let mailto = format!(
        "mailto:{}?subject=unsubscribe%20{}",
        identity
            .reply_to
            .as_ref()
            .map(|m| &m.email)
            .unwrap_or(&identity.from.email),
        a.send_id
    );
    let mut b = Message::builder()
        .from(identity.from.clone())
        .to(to)
        .subject(subject)
        .date(date)
        .message_id(Some(a.message_id.to_string()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{}>, <{mailto}>", a.unsubscribe_url),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_string(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(CAMPAIGN_HEADER),
            a.campaign_id.to_string(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(POSTMARK_CAMPAIGN_HEADER),
            a.campaign_id.to_string(),
        ));
    if let Some(r) = &identity.reply_to {
        b = b.reply_to(r.clone());
    }
    let mail_from = match a.return_path {
        Some(rp) => rp.parse::<Address>().map_err(|e| {
            header_err(
                "envelope",
                format!("return path '{}': {e}", rp.escape_debug()),
            )
        })?,
        None => identity.from.email.clone(),
    };
    let envelope = Envelope::new(Some(mail_from), vec![to_addr])
        .map_err(|e| header_err("envelope", e.to_string()))?;
    b = b.envelope(envelope.clone());
    let mut msg = b
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .map_err(|e| header_err("message", e.to_string()))?;
    if let Some(d) = dkim {
        msg.sign(&d.config);
    }
    Ok(OutgoingMessage {
        send_id: a.send_id,
        to: a.to_email.to_string(),
        message_id: a.message_id.to_string(),
        envelope,
        raw: msg.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        Rendered {
            subject: "Hello\r\nBcc: evil@x.io".into(),
            html: "<p>Hi Zoë</p>".into(),
            text: "Hi Zoë".into(),
        }
    }

    fn addr<'a>(to: &'a str, name: Option<&'a str>) -> Addressing<'a> {
        Addressing {
            campaign_id: "c-1",
            send_id: 42,
            message_id: "<abc@shop.example>",
            to_email: to,
            to_name: name,
            unsubscribe_url: "https://t.example.com/u/tok.en",
            return_path: None,
        }
    }

    #[test]
    fn the_envelope_sender_is_the_return_path_when_one_is_given() {
        let id = Identity::new("Shop <news@shop.example>", "").expect("id");
        let m = compose(
            &id,
            &addr("bob@x.io", None),
            &rendered(),
            None,
            SystemTime::UNIX_EPOCH,
        )
        .expect("compose");
        assert_eq!(
            m.envelope.from().map(ToString::to_string).as_deref(),
            Some("news@shop.example")
        );
        let rp = retain_core::tracking::return_path(b"0123456789abcdef", 42, "bounce.shop.example");
        let mut a = addr("bob@x.io", None);
        a.return_path = Some(&rp);
        let m = compose(&id, &a, &rendered(), None, SystemTime::UNIX_EPOCH).expect("compose");
        assert_eq!(m.envelope.from().map(ToString::to_string), Some(rp.clone()));
        let raw = String::from_utf8(m.raw).expect("utf8");
        assert!(
            raw.contains("From: Shop <news@shop.example>"),
            "the From header stays"
        );
        assert!(
            !raw.contains(&rp),
            "the return path is only in the envelope"
        );
        a.return_path = Some("bad\r\nRCPT TO:<x@y>");
        assert!(compose(&id, &a, &rendered(), None, SystemTime::UNIX_EPOCH).is_err());
        assert_eq!(
            id.clone()
                .with_bounce_domain(" Bounce.Shop.Example ")
                .expect("ok")
                .bounce_domain
                .as_deref(),
            Some("bounce.shop.example")
        );
        assert!(id
            .clone()
            .with_bounce_domain("")
            .expect("none")
            .bounce_domain
            .is_none());
        for bad in ["bounce", "a..b", "-a.b", "a b.c", "x@y.z"] {
            assert!(id.clone().with_bounce_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_and_structure() {
        let id = Identity::new("Shop <news@shop.example>", "help@shop.example").expect("id");
        let m = compose(
            &id,
            &addr("bob@x.io", Some("Bob\r\nBcc: evil@x.io")),
            &rendered(),
            None,
            SystemTime::UNIX_EPOCH,
        )
        .expect("compose");
        let raw = String::from_utf8(m.raw.clone()).expect("utf8");
        let head = raw
            .split("\r\n\r\n")
            .next()
            .expect("head")
            .replace("\r\n ", " ");
        assert!(head.contains("Message-ID: <abc@shop.example>"), "{head}");
        assert!(head.contains("List-Unsubscribe: <https://t.example.com/u/tok.en>, <mailto:help@shop.example?subject=unsubscribe%2042>"), "{head}");
        assert!(head.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(head.contains("X-Retain-Campaign: c-1"));
        assert!(head.contains("X-PM-Metadata-retain_campaign: c-1"));
        assert!(head.contains("Reply-To: help@shop.example"));
        assert!(head.contains("Date: Thu, 01 Jan 1970"));
        assert!(head.contains("multipart/alternative"));
        // Injection attempts stay inside their header.
        assert!(!head.lines().any(|l| l.starts_with("Bcc:")), "{head}");
        assert!(head.contains("Subject: Hello Bcc: evil@x.io"));
        assert!(raw.contains("charset=utf-8"));
        assert_eq!(m.envelope.to().len(), 1);
        assert!(compose(
            &id,
            &addr("bob@x.io\r\nRCPT TO:<x@y>", None),
            &rendered(),
            None,
            SystemTime::UNIX_EPOCH
        )
        .is_err());
        assert!(compose(
            &id,
            &addr("not an address", None),
            &rendered(),
            None,
            SystemTime::UNIX_EPOCH
        )
        .is_err());
        let mut bad = addr("bob@x.io", None);
        bad.campaign_id = "c\r\nX: y";
        assert!(compose(&id, &bad, &rendered(), None, SystemTime::UNIX_EPOCH).is_err());
        assert!(Identity::new("news@shop.example\r\nBcc: x@y", "").is_err());
        let mid = id.new_message_id();
        assert!(mid.starts_with('<') && mid.ends_with("@shop.example>"));
        assert!(check_message_id(&mid).is_ok());
    }

    #[test]
    fn dkim_signature_covers_the_unsubscribe_headers() {
        let id = Identity::new("news@shop.example", "").expect("id");
        // An Ed25519 key: 32 bytes, base64.
        let dkim = Dkim::new(
            "s1",
            "shop.example",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            true,
        )
        .expect("key");
        let m = compose(
            &id,
            &addr("bob@x.io", None),
            &rendered(),
            Some(&dkim),
            SystemTime::UNIX_EPOCH,
        )
        .expect("compose");
        let raw = String::from_utf8(m.raw).expect("utf8");
        let head = raw
            .split("\r\n\r\n")
            .next()
            .expect("head")
            .replace("\r\n ", " ");
        let sig = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("dkim-signature:"))
            .expect("signed")
            .to_ascii_lowercase();
        assert!(
            sig.contains("d=shop.example") && sig.contains("s=s1"),
            "{sig}"
        );
        let h = sig
            .split("h=")
            .nth(1)
            .and_then(|h| h.split(';').next())
            .expect("h=");
        let h: Vec<&str> = h.split(':').map(str::trim).collect();
        for name in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
        ] {
            assert!(h.contains(&name), "{name} not signed: {h:?}");
        }
        assert!(Dkim::new("s1", "shop.example", "not a key", false).is_err());
    }
}
