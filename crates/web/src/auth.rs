//! Dashboard login: an argon2 password hash from `web.password_hash` or a token from
//! `RETAIN_WEB_TOKEN`; in-memory sessions behind an `HttpOnly; SameSite=Strict` cookie, each with
//! its own CSRF token that every state-changing form must send back. The login form itself is
//! protected by a double-submit cookie. Tracking endpoints never need a session.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

// Tokio's clock: the same as the system's, but tests can move it past the session TTL.
use tokio::time::Instant;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "retain_session";
/// Name of the login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "retain_login";
/// How long a session lasts without use.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(
        "web.password_hash is not an argon2 hash (make one with `retain serve --hash-password`)"
    )]
    BadHash,
}

/// Hashes a password with argon2id and a random salt (the PHC string for `web.password_hash`).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// A random URL-safe token of 32 bytes.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Equality that takes the same time wherever the strings differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    last_seen: Instant,
}

/// What the dashboard accepts as a login, and its sessions.
#[derive(Debug)]
pub struct Auth {
    hash: Option<String>,
    token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Auth {
    /// `password_hash` from the configuration (empty: none), `token` from `RETAIN_WEB_TOKEN`.
    pub fn new(password_hash: &str, token: Option<String>) -> Result<Self, AuthError> {
        let hash = if password_hash.trim().is_empty() {
            None
        } else {
            PasswordHash::new(password_hash.trim()).map_err(|_| AuthError::BadHash)?;
            Some(password_hash.trim().to_string())
        };
        Ok(Self {
            hash,
            token: token.filter(|t| !t.is_empty()),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Whether any login is configured (otherwise the dashboard stays closed).
    pub fn enabled(&self) -> bool {
        self.hash.is_some() || self.token.is_some()
    }

    /// Checks a password (or the token) typed into the login form.
    pub fn check(&self, password: &str) -> bool {
        if let Some(t) = &self.token {
            if constant_time_eq(t.as_bytes(), password.as_bytes()) {
                return true;
            }
        }
        match self.hash.as_deref().map(PasswordHash::new) {
            Some(Ok(h)) => Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok(),
            _ => false,
        }
    }

    /// Starts a session; returns (session id, CSRF token).
    pub fn login(&self) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, v| v.last_seen.elapsed() < SESSION_TTL);
            s.insert(
                id.clone(),
                Session {
                    csrf: csrf.clone(),
                    last_seen: Instant::now(),
                },
            );
        }
        (id, csrf)
    }

    /// The session named by the request's cookie, refreshed.
    pub fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut s = self.sessions.lock().ok()?;
        let sess = s.get_mut(&id)?;
        if sess.last_seen.elapsed() >= SESSION_TTL {
            s.remove(&id);
            return None;
        }
        sess.last_seen = Instant::now();
        Some(sess.clone())
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let (Some(id), Ok(mut s)) = (cookie(headers, SESSION_COOKIE), self.sessions.lock()) {
            s.remove(&id);
        }
    }
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, whole site.
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn hash_then_check() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        let a = Auth::new(&h, None).expect("auth");
        assert!(a.enabled());
        assert!(a.check("correct horse"));
        assert!(!a.check("correct horsE"));
        assert!(Auth::new("plain text", None).is_err());
        let t = Auth::new("", Some("tok-123".into())).expect("token");
        assert!(t.check("tok-123") && !t.check("tok-124") && !t.check(""));
        assert!(!Auth::new("", None).expect("none").enabled());
    }

    #[test]
    fn sessions_come_from_the_cookie() {
        let a = Auth::new("", Some("t".into())).expect("auth");
        let (id, csrf) = a.login();
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {SESSION_COOKIE}={id}")).expect("hv"),
        );
        assert_eq!(a.session(&h).expect("session").csrf, csrf);
        a.logout(&h);
        assert!(a.session(&h).is_none());
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }
}
