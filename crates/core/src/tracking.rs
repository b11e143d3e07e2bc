//! Signed tracking tokens: the open pixel, click redirects, view-in-browser and unsubscribe links
//! that the mailer puts in every email and the web crate verifies.
//!
//! A token names a send (the ledger row of one campaign email to one recipient) by its numeric id
//! — never an email address or name — plus what the link does. Click tokens carry the target URL,
//! so the HMAC proves the URL was in an email we sent: there is no open redirect. Tokens are
//! `base64url(payload) "." base64url(HMAC-SHA256(secret, payload)[..16])`.
//!
//! Return paths (VERP) sign the send id too, in a form that survives mail systems that change the
//! case of addresses: `bounces+<send id>-<base32(HMAC-SHA256(secret, "b:<id>")[..10])>@<domain>`
//! ([`return_path`], [`send_id_of_return_path`]).

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

/// The local-part prefix of return paths.
pub const RETURN_PATH_PREFIX: &str = "bounces+";
/// Bytes of the HMAC in a return-path token (80 bits, 16 base32 characters).
const RETURN_PATH_MAC: usize = 10;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = BASE32.iter().position(|&b| b == c.to_ascii_lowercase())? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buf >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The signed token of a send's return path: `<send id>-<base32 MAC>` (lowercase).
pub fn return_path_token(secret: &[u8], send_id: i64) -> String {
    let mac = mac(secret, format!("b:{send_id}").as_bytes());
    format!("{send_id}-{}", base32(&mac[..RETURN_PATH_MAC]))
}

/// The send id a return-path token names, after checking its signature in constant time (case
/// is ignored: some mail systems lowercase addresses).
pub fn verify_return_path_token(secret: &[u8], token: &str) -> Result<i64, TokenError> {
    let (id, sig) = token.split_once('-').ok_or(TokenError::Malformed)?;
    let send_id: i64 = id.parse().map_err(|_| TokenError::Malformed)?;
    // 16 characters carry exactly the 80 bits: no slack for appended characters.
    if sig.len() != RETURN_PATH_MAC * 8 / 5 {
        return Err(TokenError::Malformed);
    }
    let sig = unbase32(sig).ok_or(TokenError::Malformed)?;
    if sig.len() != RETURN_PATH_MAC {
        return Err(TokenError::Malformed);
    }
    let mut m = HmacSha256::new_from_slice(secret).map_err(|_| TokenError::BadSignature)?;
    m.update(format!("b:{send_id}").as_bytes());
    m.verify_truncated_left(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    Ok(send_id)
}

/// The envelope sender of one send: `bounces+<token>@<domain>`.
pub fn return_path(secret: &[u8], send_id: i64, domain: &str) -> String {
    format!(
        "{RETURN_PATH_PREFIX}{}@{}",
        return_path_token(secret, send_id),
        domain.trim().to_ascii_lowercase()
    )
}

/// The send id named by a return-path address (`bounces+<token>@any domain`, optionally in angle
/// brackets), when its signature is ours.
pub fn send_id_of_return_path(secret: &[u8], address: &str) -> Option<i64> {
    let a = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, _domain) = a.rsplit_once('@')?;
    let local = local.to_ascii_lowercase();
    let token = local.strip_prefix(RETURN_PATH_PREFIX)?;
    verify_return_path_token(secret, token).ok()
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
    fn return_paths_round_trip_and_refuse_forgeries() {
        for id in [0, 1, 42, 1_234_567, i64::MAX] {
            let a = return_path(SECRET, id, "Bounce.Shop.Example");
            assert!(
                a.starts_with("bounces+") && a.ends_with("@bounce.shop.example"),
                "{a}"
            );
            let local = a.split('@').next().expect("local");
            assert!(
                local.len() <= 64,
                "{a}: an RFC 5321 local part has at most 64 octets"
            );
            assert_eq!(send_id_of_return_path(SECRET, &a), Some(id));
            assert_eq!(send_id_of_return_path(SECRET, &a.to_uppercase()), Some(id));
            assert_eq!(send_id_of_return_path(SECRET, &format!("<{a}>")), Some(id));
        }
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert_eq!(unbase32("mzxw6ytboi").as_deref(), Some(&b"foobar"[..]));
        let a = return_path(SECRET, 7, "b.example");
        // Another send id with this signature, another secret, a cut signature: refused.
        assert_eq!(
            send_id_of_return_path(SECRET, &a.replacen("+7-", "+8-", 1)),
            None
        );
        assert_eq!(
            send_id_of_return_path(b"another secret, also long enough", &a),
            None
        );
        assert_eq!(
            send_id_of_return_path(SECRET, &a.replacen("@", "x@", 1)),
            None
        );
        assert_eq!(send_id_of_return_path(SECRET, "news@shop.example"), None);
        assert_eq!(send_id_of_return_path(SECRET, "bounces+x@b.example"), None);
        assert_eq!(
            verify_return_path_token(SECRET, "7-!!"),
            Err(TokenError::Malformed)
        );
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
