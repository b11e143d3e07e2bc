//! Tracking visits replayed in process: each visit is a real request to the public router
//! (`/o/` open pixel, `/c/` click), answered by the same handlers and recorded by the same event
//! writer as on a live server, at a time the caller chooses. For simulations (`retain demo`'s
//! weeks after the send) and tests; nothing listens on a port.

use axum::body::Body;
use axum::http::{header, Request};
use retain_core::config::Config;
use retain_store::Store;
use tower::ServiceExt;

use crate::server::{public_router, AppState, StateOptions};
use crate::throttle::LoginLimits;
use crate::writer::{spawn, WriterConfig};
use crate::WebError;

/// One visit: a tracking path (`/o/<token>`, `/c/<token>`) requested at `at` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub at: i64,
    pub path: String,
}

/// What the replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Requests answered with success or a redirect.
    pub answered: u64,
    /// Requests refused (unknown or tampered tokens).
    pub refused: u64,
    /// Events the writer stored.
    pub recorded: u64,
    /// Events the writer could not store (0 unless the database stayed unreachable).
    pub lost: u64,
}

/// A desktop browser's User-Agent: the visits are people, not scanners.
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

/// Replays `visits` (in the given order) against the public tracking router over `store`,
/// signed with `secret`; every event is stored before this returns.
pub async fn replay_visits(
    store: &Store,
    config: Config,
    secret: Vec<u8>,
    visits: &[Visit],
) -> Result<ReplaySummary, WebError> {
    let (events, task) = spawn(store.clone(), WriterConfig::default());
    let state = AppState::new(
        store.clone(),
        events,
        StateOptions {
            config,
            secret,
            web_token: None,
            viewer_token: None,
            view_renderer: None,
            login_limits: LoginLimits::default(),
            webhooks: Default::default(),
            program: None,
        },
    )?;
    let router = public_router(state.clone());
    let mut summary = ReplaySummary::default();
    for v in visits {
        state.clock.set(v.at);
        let request = Request::get(v.path.as_str())
            .header(header::USER_AGENT, BROWSER)
            .body(Body::empty())
            .map_err(|e| WebError::Template(format!("replay request {}: {e}", v.path)))?;
        let response = match router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let s = response.status();
        if s.is_success() || s.is_redirection() {
            summary.answered += 1;
        } else {
            summary.refused += 1;
        }
    }
    drop(router);
    drop(state);
    let stats = task.stats_handle();
    summary.lost = task.shutdown().await;
    summary.recorded = stats.written.load(std::sync::atomic::Ordering::Relaxed);
    Ok(summary)
}
