//! Signed tracking tokens: the open pixel, click redirects, view-in-browser and unsubscribe links
//! that the mailer puts in every email and the web crate verifies.
//!
//! A token names a send (the ledger row of one campaign email to one recipient) by its numeric id
//! — never an email address or name — plus what the link does. Click tokens carry the target URL,
//! so the HMAC proves the URL was in an email we sent: there is no open redirect. Tokens are
//! `base64url(payload) "." base64url(HMAC-SHA256(secret, payload)[..16])`.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a tracking link does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Open,
    Click { url: String },
    View,
    Unsubscribe,
}

/// A verified (or to-be-signed) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub send_id: i64,
    pub action: Action,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no tracking secret: set RETAIN_SECRET or create {0} (retain init does)")]
    Missing(String),
    #[error("{file}: cannot read the tracking secret: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the tracking secret is too short (at least 16 bytes)")]
    TooShort,
}

/// The signing secret: `RETAIN_SECRET`, else the workspace's `secret.key` file.
pub fn load_secret(workspace: &Path) -> Result<Vec<u8>, SecretError> {
    if let Ok(s) = std::env::var("RETAIN_SECRET") {
        if !s.is_empty() {
            return check(s.into_bytes());
        }
    }
    let file = workspace.join("secret.key");
    match std::fs::read(&file) {
        Ok(b) => check(b.trim_ascii().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(SecretError::Missing(file.display().to_string()))
        }
        Err(source) => Err(SecretError::Io {
            file: file.display().to_string(),
            source,
        }),
    }
}

fn check(secret: Vec<u8>) -> Result<Vec<u8>, SecretError> {
    if secret.len() < 16 {
        Err(SecretError::TooShort)
    } else {
        Ok(secret)
    }
}

fn mac(secret: &[u8], payload: &[u8]) -> [u8; 16] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return [0; 16],
    };
    m.update(payload);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

impl Token {
    fn payload(&self) -> String {
        match &self.action {
            Action::Open => format!("o:{}", self.send_id),
            Action::View => format!("v:{}", self.send_id),
            Action::Unsubscribe => format!("u:{}", self.send_id),
            Action::Click { url } => format!("c:{}:{url}", self.send_id),
        }
    }

    /// The signed, URL-safe token.
    pub fn sign(&self, secret: &[u8]) -> String {
        let payload = self.payload();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(mac(secret, payload.as_bytes()))
        )
    }

    /// Verifies a token's signature (in constant time) and decodes it.
    pub fn verify(secret: &[u8], token: &str) -> Result<Self, TokenError> {
        let (p, s) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let mut m = HmacSha256::new_from_slice(secret).map_err(|_| TokenError::BadSignature)?;
        m.update(&payload);
        m.verify_truncated_left(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        if sig.len() != 16 {
            return Err(TokenError::BadSignature);
        }
        let text = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let (kind, rest) = text.split_once(':').ok_or(TokenError::Malformed)?;
        let (id, url) = match rest.split_once(':') {
            Some((id, url)) => (id, Some(url)),
            None => (rest, None),
        };
        let send_id: i64 = id.parse().map_err(|_| TokenError::Malformed)?;
        let action = match (kind, url) {
            ("o", None) => Action::Open,
            ("v", None) => Action::View,
            ("u", None) => Action::Unsubscribe,
            ("c", Some(u)) if u.starts_with("https://") || u.starts_with("http://") => {
                Action::Click { url: u.to_string() }
            }
            _ => return Err(TokenError::Malformed),
        };
        Ok(Self { send_id, action })
    }
}

/// Builds the tracking URLs of one send from `tracking.base_url`.
#[derive(Debug, Clone)]
pub struct Links<'a> {
    pub base_url: &'a str,
    pub secret: &'a [u8],
    pub send_id: i64,
}

impl Links<'_> {
    fn url(&self, path: &str, action: Action) -> String {
        let t = Token {
            send_id: self.send_id,
            action,
        }
        .sign(self.secret);
        format!("{}/{path}/{t}", self.base_url.trim_end_matches('/'))
    }
    /// The 1×1 open pixel.
    pub fn open_pixel(&self) -> String {
        self.url("o", Action::Open)
    }
    /// The unsubscribe page (GET shows a confirm button; POST is RFC 8058 one-click).
    pub fn unsubscribe(&self) -> String {
        self.url("u", Action::Unsubscribe)
    }
    /// The view-in-browser page.
    pub fn view(&self) -> String {
        self.url("v", Action::View)
    }
    /// A tracked redirect to `target`.
    pub fn click(&self, target: &str) -> String {
        self.url(
            "c",
            Action::Click {
                url: target.to_string(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_every_action() {
        for action in [
            Action::Open,
            Action::View,
            Action::Unsubscribe,
            Action::Click {
                url: "https://shop.example/a?b=c:d".into(),
            },
        ] {
            let t = Token {
                send_id: 42,
                action,
            };
            let s = t.sign(SECRET);
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
            assert_eq!(Token::verify(SECRET, &s), Ok(t));
        }
    }

    #[test]
    fn tampering_and_other_secrets_fail() {
        let s = Token {
            send_id: 7,
            action: Action::Click {
                url: "https://shop.example/".into(),
            },
        }
        .sign(SECRET);
        assert_eq!(
            Token::verify(b"another secret, also long enough", &s),
            Err(TokenError::BadSignature)
        );
        let (p, sig) = s.split_once('.').expect("dot");
        let forged_payload = URL_SAFE_NO_PAD.encode(b"c:7:https://evil.example/");
        assert_eq!(
            Token::verify(SECRET, &format!("{forged_payload}.{sig}")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(Token::verify(SECRET, p), Err(TokenError::Malformed));
        assert_eq!(Token::verify(SECRET, "..."), Err(TokenError::Malformed));
        let short = &sig[..sig.len() - 2];
        assert!(Token::verify(SECRET, &format!("{p}.{short}")).is_err());
    }

    #[test]
    fn links_use_the_base_url_and_carry_no_address() {
        let l = Links {
            base_url: "https://t.example.com/",
            secret: SECRET,
            send_id: 5,
        };
        let u = l.unsubscribe();
        assert!(u.starts_with("https://t.example.com/u/"));
        let token = u.rsplit('/').next().expect("token");
        assert_eq!(
            Token::verify(SECRET, token).expect("ok").action,
            Action::Unsubscribe
        );
        assert!(!l.open_pixel().contains('@'));
    }
}
