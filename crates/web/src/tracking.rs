//! The public tracking endpoints that every campaign email links to: the open pixel (`/o/`), click
//! redirects (`/c/`), view in browser (`/v/`) and unsubscribe (`/u/`, GET a confirm page, POST
//! RFC 8058 one-click). Each verifies its HMAC-signed token, looks the send up, and hands an event
//! to the batched writer. A tampered token or an unknown send gets a 4xx and records nothing; a
//! click goes only to the URL its token signs (no open redirect); an unsubscribe suppresses the
//! address and withdraws consent before the answer is sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use retain_core::tracking::{Action, Token};
use retain_core::SuppressionReason;
use retain_store::{EventKind, NewEvent, Store};

use crate::report::BOT_SECONDS;
use crate::server::AppState;
use crate::views::escape;

/// A transparent 1×1 GIF.
pub const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// What the endpoints need to know about a send.
#[derive(Debug, Clone, PartialEq)]
pub struct SendInfo {
    pub campaign_id: String,
    pub email: String,
    pub sent_at: Option<i64>,
}

/// Sends already looked up, so a burst of opens does not query the ledger per request. Entries
/// without `sent_at` are looked up again (the send may not have been confirmed yet).
#[derive(Debug, Default)]
pub struct SendCache {
    map: RwLock<HashMap<i64, SendInfo>>,
}

const CACHE_MAX: usize = 1_000_000;

impl SendCache {
    pub async fn get(
        &self,
        store: &Store,
        id: i64,
    ) -> Result<Option<SendInfo>, retain_store::StoreError> {
        if let Ok(m) = self.map.read() {
            if let Some(s) = m.get(&id) {
                if s.sent_at.is_some() {
                    return Ok(Some(s.clone()));
                }
            }
        }
        let Some(rec) = store.send(id).await? else {
            return Ok(None);
        };
        let info = SendInfo {
            campaign_id: rec.campaign_id,
            email: rec.email,
            sent_at: rec.sent_at,
        };
        if let Ok(mut m) = self.map.write() {
            if m.len() >= CACHE_MAX {
                m.clear();
            }
            m.insert(id, info.clone());
        }
        Ok(Some(info))
    }
}

/// User agents of image proxies, link scanners and scripts: their requests are not people.
/// (Gmail's image proxy fetches when a person opens, so it is not listed.)
pub fn is_bot_agent(ua: &str) -> bool {
    let ua = ua.to_ascii_lowercase();
    if ua.contains("googleimageproxy") {
        return false;
    }
    const MARKERS: &[&str] = &[
        "bot",
        "crawler",
        "spider",
        "preview",
        "proxy",
        "scanner",
        "barracuda",
        "mimecast",
        "proofpoint",
        "messagelabs",
        "symantec",
        "trendmicro",
        "fireeye",
        "zscaler",
        "forcepoint",
        "sophos",
        "curl/",
        "wget/",
        "python-",
        "go-http-client",
        "java/",
        "libwww",
        "okhttp",
        "httpclient",
        "headless",
    ];
    MARKERS.iter().any(|m| ua.contains(m))
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The time the endpoints stamp events with (Unix seconds): the system clock, unless a test
/// set it by hand to place a request exactly inside or outside the prefetch window.
#[derive(Debug, Clone)]
pub struct Clock(Arc<AtomicI64>);

const SYSTEM: i64 = i64::MIN;

impl Default for Clock {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(SYSTEM)))
    }
}

impl Clock {
    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        match self.0.load(Ordering::Relaxed) {
            SYSTEM => chrono::Utc::now().timestamp(),
            at => at,
        }
    }

    /// Stops the clock at `at` (Unix seconds), for tests.
    pub fn set(&self, at: i64) {
        self.0.store(at.max(SYSTEM + 1), Ordering::Relaxed);
    }

    /// Moves the clock `secs` seconds on from now and stops it there, for tests (sessions and
    /// the login throttle expire by this clock).
    pub fn advance(&self, secs: i64) {
        self.set(self.now().saturating_add(secs));
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-store")],
        "unknown or invalid link\n",
    )
        .into_response()
}

fn server_error(e: impl std::fmt::Display) -> Response {
    eprintln!("retain serve: {e}");
    (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable\n").into_response()
}

/// Verifies `token` for the expected action kind and finds its send.
async fn resolve(
    st: &AppState,
    token: &str,
    want: fn(&Action) -> bool,
) -> Result<(Token, SendInfo), Response> {
    let t = match Token::verify(&st.secret, token) {
        Ok(t) if want(&t.action) => t,
        _ => return Err(not_found()),
    };
    match st.sends.get(&st.store, t.send_id).await {
        Ok(Some(s)) => Ok((t, s)),
        Ok(None) => Err(not_found()),
        Err(e) => Err(server_error(e)),
    }
}

async fn record(
    st: &AppState,
    t: &Token,
    s: &SendInfo,
    kind: EventKind,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let at = st.clock.now();
    let ua = user_agent(headers);
    let prefetch = matches!(kind, EventKind::Open | EventKind::Click)
        && s.sent_at.is_some_and(|sent| at - sent < BOT_SECONDS);
    let bot = prefetch || ua.as_deref().is_some_and(is_bot_agent);
    let url = match &t.action {
        Action::Click { url } => Some(url.clone()),
        _ => None,
    };
    st.events
        .record(NewEvent {
            send_id: t.send_id,
            kind,
            at,
            bot,
            url,
            user_agent: ua,
        })
        .await
        .map_err(server_error)
}

/// GET /o/<token>: the open pixel.
pub async fn open(
    State(st): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let token = token.trim_end_matches(".gif");
    let (t, s) = match resolve(&st, token, |a| matches!(a, Action::Open)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = record(&st, &t, &s, EventKind::Open, &headers).await {
        return r;
    }
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (
                header::CACHE_CONTROL,
                "no-store, no-cache, must-revalidate, private",
            ),
        ],
        PIXEL_GIF,
    )
        .into_response()
}

/// GET /c/<token>: records the click and redirects to the URL the token signs.
pub async fn click(
    State(st): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (t, s) = match resolve(&st, &token, |a| matches!(a, Action::Click { .. })).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Action::Click { url } = &t.action else {
        return not_found();
    };
    let Ok(location) = HeaderValue::from_str(url) else {
        return not_found();
    };
    if let Err(r) = record(&st, &t, &s, EventKind::Click, &headers).await {
        return r;
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response()
}

/// GET /v/<token>: the email in the browser.
pub async fn view(
    State(st): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (t, s) = match resolve(&st, &token, |a| matches!(a, Action::View)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = record(&st, &t, &s, EventKind::View, &headers).await {
        return r;
    }
    let rendered = match st.view_renderer.as_ref() {
        Some(f) => f(t.send_id).await,
        None => None,
    };
    let body = match rendered {
        Some(html) => html,
        None => crate::views::page(
            "Your email",
            &format!(
                "<h1>{}</h1><p>This message was part of the campaign <b>{}</b> sent to {}.</p>\
                 <p>The online copy of this email is not available on this server.</p>",
                escape(&st.company_name),
                escape(&s.campaign_id),
                escape(&mask_email(&s.email))
            ),
        ),
    };
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            // The email's own images may live anywhere; nothing else loads.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; frame-ancestors 'none'",
            ),
        ],
        Html(body),
    )
        .into_response()
}

/// `alice@example.com` → `a…@example.com` (pages reached by link never show a whole address).
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}…@{domain}")
        }
        None => "…".into(),
    }
}

/// GET /u/<token>: asks for confirmation (mail scanners follow links; a GET changes nothing).
pub async fn unsubscribe_page(State(st): State<AppState>, Path(token): Path<String>) -> Response {
    let (_, s) = match resolve(&st, &token, |a| matches!(a, Action::Unsubscribe)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = crate::views::page(
        "Unsubscribe",
        &format!(
            "<h1>Unsubscribe</h1><p>Stop receiving marketing email from {} at {}?</p>\
             <form method=\"post\" action=\"/u/{}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            escape(&st.company_name),
            escape(&mask_email(&s.email)),
            escape(&token)
        ),
    );
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(body),
    )
        .into_response()
}

/// POST /u/<token>: RFC 8058 one-click (body `List-Unsubscribe=One-Click`) and the confirm
/// button. The address is suppressed and consent withdrawn before the answer.
pub async fn unsubscribe(
    State(st): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (t, s) = match resolve(&st, &token, |a| matches!(a, Action::Unsubscribe)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = st
        .store
        .suppress(&s.email, SuppressionReason::Unsubscribed, "link")
        .await
    {
        return server_error(e);
    }
    if let Err(e) = st.store.set_consent_by_email(&s.email, false).await {
        return server_error(e);
    }
    if let Err(r) = record(&st, &t, &s, EventKind::Unsubscribe, &headers).await {
        return r;
    }
    let body = crate::views::page(
        "Unsubscribed",
        &format!(
            "<h1>You are unsubscribed</h1><p>{} will not send marketing email to {} any more.</p>",
            escape(&st.company_name),
            escape(&mask_email(&s.email))
        ),
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_agents() {
        assert!(is_bot_agent("Mozilla/5.0 (compatible; BingPreview/1.0b)"));
        assert!(is_bot_agent("Barracuda Sentinel (EE)"));
        assert!(is_bot_agent("python-requests/2.31"));
        assert!(is_bot_agent("YahooMailProxy; https://help.yahoo.com"));
        assert!(!is_bot_agent(
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
        ));
        assert!(!is_bot_agent(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
        ));
    }

    #[test]
    fn masking() {
        assert_eq!(mask_email("alice@example.com"), "a…@example.com");
        assert_eq!(mask_email("nope"), "…");
    }
}
