//! The HTTP server of `retain serve`: the shared state, the router (public tracking endpoints,
//! login, the dashboard behind a session) and the run loop with graceful shutdown that drains the
//! event writer before returning.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use retain_core::config::Config;
use retain_store::Store;

use crate::auth::Auth;
use crate::tracking::{Clock, SendCache};
use crate::views::Views;
use crate::writer::{self, EventWriter, WriterConfig};
use crate::{dashboard, tracking, WebError};

/// Re-renders the email of a send for `/v/<token>` (the binary wires the mailer in); `None`:
/// not available, a plain page is shown.
pub type ViewFn =
    Arc<dyn Fn(i64) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub secret: Vec<u8>,
    pub events: EventWriter,
    pub sends: SendCache,
    /// The tracking endpoints' clock (settable in tests).
    pub clock: Clock,
    pub company_name: String,
    pub auth: Auth,
    pub views: Views,
    pub view_renderer: Option<ViewFn>,
    pub config: Config,
    /// Whole-shop page data, kept until the data changes.
    pub pages: crate::dashboard::PageCache,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// How to build the state.
pub struct StateOptions {
    pub config: Config,
    pub secret: Vec<u8>,
    /// `RETAIN_WEB_TOKEN`.
    pub web_token: Option<String>,
    pub view_renderer: Option<ViewFn>,
}

impl std::fmt::Debug for StateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateOptions").finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(store: Store, events: EventWriter, opts: StateOptions) -> Result<Self, WebError> {
        let auth = Auth::new(&opts.config.web.password_hash, opts.web_token)?;
        Ok(Self(Arc::new(Inner {
            store,
            secret: opts.secret,
            events,
            sends: SendCache::default(),
            clock: Clock::default(),
            company_name: opts.config.company.name.clone(),
            auth,
            views: Views::new()?,
            view_renderer: opts.view_renderer,
            config: opts.config,
            pages: crate::dashboard::PageCache::default(),
        })))
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/o/{token}", get(tracking::open))
        .route("/c/{token}", get(tracking::click))
        .route("/v/{token}", get(tracking::view))
        .route(
            "/u/{token}",
            get(tracking::unsubscribe_page).post(tracking::unsubscribe),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/login", get(dashboard::login_page).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/", get(dashboard::overview))
        .route("/segments", get(dashboard::segments))
        .route("/predictions", get(dashboard::predictions))
        .route("/plans", get(dashboard::plans))
        .route("/plans/{id}", get(dashboard::plan))
        .route("/plans/{id}/approve", post(dashboard::approve_plan))
        .route("/customers", get(dashboard::customers))
        .route("/customers/{id}", get(dashboard::customer))
        .route("/campaigns", get(dashboard::campaigns))
        .route("/campaigns/{id}", get(dashboard::campaign))
        .route("/campaigns/{id}/report.html", get(dashboard::campaign_report))
        .route("/campaigns/{id}/pause", post(dashboard::pause_campaign))
        .route("/campaigns/{id}/resume", post(dashboard::resume_campaign))
        .layer(axum::middleware::map_response(
            |mut r: axum::response::Response| async move {
                let h = r.headers_mut();
                h.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                h.entry(header::CONTENT_SECURITY_POLICY).or_insert(
                    HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
                    ),
                );
                r
            },
        ))
        .with_state(state)
}

/// What a finished server did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSummary {
    pub events_written: u64,
    pub events_lost: u64,
}

/// Serves on `addr` until `shutdown` completes, then stops accepting, finishes open requests and
/// flushes every queued event.
pub async fn serve(
    store: Store,
    addr: SocketAddr,
    opts: StateOptions,
    writer_cfg: WriterConfig,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ServeSummary, WebError> {
    let (events, task) = writer::spawn(store.clone(), writer_cfg);
    let state = AppState::new(store, events, opts)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    on_bound(local);
    // The whole-shop pages are computed once in the background, so the first visit is fast too.
    tokio::spawn(crate::dashboard::warm(state.clone()));
    let app = router(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let stats = task.stats_handle();
    let lost = task.shutdown().await;
    served.map_err(WebError::Serve)?;
    Ok(ServeSummary {
        events_written: stats.written.load(std::sync::atomic::Ordering::Relaxed),
        events_lost: lost,
    })
}
