//! Dashboard login and sessions. Two roles: the administrator (argon2 hash `web.password_hash`
//! or the token `RETAIN_WEB_TOKEN`) and the read-only viewer (`web.viewer_password_hash` or
//! `RETAIN_WEB_VIEWER_TOKEN`), who sees every page but may not change anything. Sessions live in
//! the database (`web_sessions`: only the SHA-256 of the cookie's token is stored), so a restart
//! logs nobody out; each expires after [`SESSION_TTL`] without use, timed by the state's
//! [`Clock`], and has its own CSRF token that every state-changing form must send back. The
//! cookies are `HttpOnly; SameSite=Strict`, and `Secure` when the request came over https (as a
//! trusted proxy says: [`is_https`]). The login form itself is protected by a double-submit
//! cookie. Tracking endpoints never need a session.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use retain_store::{Store, StoreError, WebSessionRecord};
use sha2::{Digest, Sha256};

use crate::tracking::Clock;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "retain_session";
/// Name of the login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "retain_login";
/// How long a session lasts without use.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// A session's expiry is pushed back at most once per this many seconds (not a write per page).
const REFRESH_EVERY: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("web.{0} is not an argon2 hash (make one with `retain serve --hash-password`)")]
    BadHash(&'static str),
}

/// What a login may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: approve plans, pause and resume campaigns.
    Admin,
    /// Every page, no state-changing form.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// A stored role; anything unknown is a viewer (never more rights than stored).
    pub fn parse(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::Viewer
        }
    }
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

/// What the database keeps of a session token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equality that takes the same time wherever the strings differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A logged-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub csrf: String,
    pub role: Role,
}

/// The secrets a login may be checked against (empty / `None`: not configured).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `web.password_hash`.
    pub password_hash: String,
    /// `RETAIN_WEB_TOKEN`.
    pub token: Option<String>,
    /// `web.viewer_password_hash`.
    pub viewer_password_hash: String,
    /// `RETAIN_WEB_VIEWER_TOKEN`.
    pub viewer_token: Option<String>,
}

/// One role's password hash and token.
#[derive(Debug, Default)]
struct Login {
    hash: Option<String>,
    token: Option<String>,
}

impl Login {
    fn new(hash: &str, token: Option<String>, key: &'static str) -> Result<Self, AuthError> {
        let hash = if hash.trim().is_empty() {
            None
        } else {
            PasswordHash::new(hash.trim()).map_err(|_| AuthError::BadHash(key))?;
            Some(hash.trim().to_string())
        };
        Ok(Self {
            hash,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    fn enabled(&self) -> bool {
        self.hash.is_some() || self.token.is_some()
    }

    fn check(&self, password: &str) -> bool {
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
}

/// What the dashboard accepts as a login, and its sessions (in the store).
#[derive(Debug)]
pub struct Auth {
    admin: Login,
    viewer: Login,
    store: Store,
    clock: Clock,
}

impl Auth {
    /// Checks that the configured hashes are argon2 hashes.
    pub fn new(credentials: Credentials, store: Store, clock: Clock) -> Result<Self, AuthError> {
        Ok(Self {
            admin: Login::new(
                &credentials.password_hash,
                credentials.token,
                "password_hash",
            )?,
            viewer: Login::new(
                &credentials.viewer_password_hash,
                credentials.viewer_token,
                "viewer_password_hash",
            )?,
            store,
            clock,
        })
    }

    /// Whether any login is configured (otherwise the dashboard stays closed).
    pub fn enabled(&self) -> bool {
        self.admin.enabled() || self.viewer.enabled()
    }

    /// Checks a password (or token) typed into the login form: the role it logs in as. The
    /// administrator's secrets are tried first.
    pub fn check(&self, password: &str) -> Option<Role> {
        if self.admin.check(password) {
            Some(Role::Admin)
        } else if self.viewer.check(password) {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    /// Starts a session (and forgets the expired ones); returns (session token, CSRF token).
    pub async fn login(&self, role: Role) -> Result<(String, String), StoreError> {
        let now = self.clock.now();
        self.store.delete_expired_web_sessions(now).await?;
        let id = random_token();
        let csrf = random_token();
        self.store
            .create_web_session(&WebSessionRecord {
                token_hash: token_hash(&id),
                role: role.as_str().into(),
                csrf: csrf.clone(),
                created_at: now,
                expires_at: now + ttl(),
            })
            .await?;
        Ok((id, csrf))
    }

    /// The live session named by the request's cookie, its expiry pushed back.
    pub async fn session(&self, headers: &HeaderMap) -> Result<Option<Session>, StoreError> {
        let Some(id) = cookie(headers, SESSION_COOKIE).filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let hash = token_hash(&id);
        let now = self.clock.now();
        let Some(s) = self.store.web_session(&hash, now).await? else {
            return Ok(None);
        };
        if s.expires_at - now < ttl() - REFRESH_EVERY {
            self.store.touch_web_session(&hash, now + ttl()).await?;
        }
        Ok(Some(Session {
            csrf: s.csrf,
            role: Role::parse(&s.role),
        }))
    }

    /// Ends the session named by the request's cookie.
    pub async fn logout(&self, headers: &HeaderMap) -> Result<(), StoreError> {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.store.delete_web_session(&token_hash(&id)).await?;
        }
        Ok(())
    }
}

fn ttl() -> i64 {
    SESSION_TTL.as_secs() as i64
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

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, whole site, and `Secure` when the request
/// came over https.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the request reached the proxy over https: `X-Forwarded-Proto: https`, believed only
/// with `web.trusted_proxy` (`retain serve` itself speaks plain HTTP).
pub fn is_https(headers: &HeaderMap, trusted_proxy: bool) -> bool {
    trusted_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The client a login attempt is counted against: the peer's address, or with
/// `web.trusted_proxy` the address the proxy appended to `X-Forwarded-For` (its last entry:
/// the earlier ones are whatever the client sent). IPv6 clients count by their /64.
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, trusted_proxy: bool) -> IpAddr {
    let forwarded = trusted_proxy
        .then(|| {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .and_then(|a| a.trim().parse::<IpAddr>().ok())
        })
        .flatten();
    let ip = forwarded
        .or(peer.map(|p| p.ip()))
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_sqlite(&dir.path().join("t.db"))
            .await
            .expect("open");
        (store, dir)
    }

    fn creds(hash: &str, token: Option<&str>) -> Credentials {
        Credentials {
            password_hash: hash.into(),
            token: token.map(str::to_string),
            ..Credentials::default()
        }
    }

    #[tokio::test]
    async fn hash_then_check() {
        let (st, _dir) = store().await;
        let c = Clock::default();
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        let a = Auth::new(creds(&h, None), st.clone(), c.clone()).expect("auth");
        assert!(a.enabled());
        assert_eq!(a.check("correct horse"), Some(Role::Admin));
        assert_eq!(a.check("correct horsE"), None);
        assert!(Auth::new(creds("plain text", None), st.clone(), c.clone()).is_err());
        let t = Auth::new(creds("", Some("tok-123")), st.clone(), c.clone()).expect("token");
        assert!(t.check("tok-123").is_some() && t.check("tok-124").is_none());
        assert!(t.check("").is_none());
        assert!(!Auth::new(creds("", None), st.clone(), c.clone())
            .expect("none")
            .enabled());
        let v = Auth::new(
            Credentials {
                viewer_password_hash: h.clone(),
                viewer_token: Some("view-1".into()),
                ..creds("", Some("admin-1"))
            },
            st.clone(),
            c.clone(),
        )
        .expect("viewer");
        assert_eq!(v.check("admin-1"), Some(Role::Admin));
        assert_eq!(v.check("view-1"), Some(Role::Viewer));
        assert_eq!(v.check("correct horse"), Some(Role::Viewer));
        assert_eq!(v.check("view-2"), None);
        let e = Auth::new(
            Credentials {
                viewer_password_hash: "nope".into(),
                ..Credentials::default()
            },
            st,
            c,
        )
        .expect_err("bad viewer hash");
        assert!(e.to_string().contains("viewer_password_hash"), "{e}");
    }

    #[tokio::test]
    async fn sessions_come_from_the_cookie_and_only_hashes_are_stored() {
        let (st, _dir) = store().await;
        let a = Auth::new(creds("", Some("t")), st.clone(), Clock::default()).expect("auth");
        let (id, csrf) = a.login(Role::Viewer).await.expect("login");
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {SESSION_COOKIE}={id}")).expect("hv"),
        );
        assert_eq!(
            a.session(&h).await.expect("q"),
            Some(Session {
                csrf,
                role: Role::Viewer
            })
        );
        assert!(
            st.web_session(&id, 0).await.expect("q").is_none(),
            "raw token stored"
        );
        assert!(st
            .web_session(&token_hash(&id), 0)
            .await
            .expect("q")
            .is_some());
        a.logout(&h).await.expect("logout");
        assert!(a.session(&h).await.expect("q").is_none());
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }

    #[test]
    fn clients_and_https_believe_the_proxy_only_when_trusted() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(client_ip(&h, Some(peer), false), peer.ip());
        assert_eq!(
            client_ip(&h, Some(peer), true),
            "203.0.113.7".parse::<IpAddr>().expect("ip")
        );
        assert!(!is_https(&h, false) && is_https(&h, true));
        let v6: SocketAddr = "[2001:db8:1:2:3:4:5:6]:1".parse().expect("v6");
        assert_eq!(
            client_ip(&HeaderMap::new(), Some(v6), true),
            "2001:db8:1:2::".parse::<IpAddr>().expect("ip")
        );
        assert!(!is_https(&HeaderMap::new(), true));
        assert!(set_cookie("a", "b", SESSION_TTL, true).ends_with("; Secure"));
        assert!(!set_cookie("a", "b", SESSION_TTL, false).contains("Secure"));
    }
}
