//! The HTTP server of `retain serve`: the shared state, the routers (public tracking endpoints;
//! login and the dashboard behind a session; both on one listener, or the dashboard on its own
//! address), the security headers every response carries, and the run loop with graceful
//! shutdown that drains the event writer before returning.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use retain_core::config::Config;
use retain_store::Store;

use crate::auth::{Auth, Credentials};
use crate::throttle::{LoginLimits, LoginThrottle};
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
    /// The server's clock: event times, session expiry, the login throttle (settable in tests).
    pub clock: Clock,
    pub company_name: String,
    pub auth: Auth,
    pub throttle: LoginThrottle,
    pub views: Views,
    pub view_renderer: Option<ViewFn>,
    pub config: Config,
    /// Whole-shop page data, kept until the data changes.
    pub pages: crate::dashboard::PageCache,
    /// Campaign reports, kept until their campaign's data changes.
    pub reports: crate::dashboard::ReportCache,
    /// Campaigns' deliverability, kept until their sends or reports change.
    pub deliverability: crate::dashboard::DeliverabilityCache,
    /// The provider webhooks' keys, certificate cache and seen tokens.
    pub webhooks: crate::webhooks::Webhooks,
    /// The programme's global control group (`[program]` in goals.toml): the overview measures
    /// the whole programme against it. `None`: not shown.
    pub program: Option<retain_results::program::Program>,
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
    /// `RETAIN_WEB_VIEWER_TOKEN`: the read-only login's token.
    pub viewer_token: Option<String>,
    pub view_renderer: Option<ViewFn>,
    /// The login throttle's limits.
    pub login_limits: LoginLimits,
    /// The provider webhooks (none configured by default).
    pub webhooks: crate::webhooks::Webhooks,
    /// `[program]` of goals.toml (`None`: the overview shows no programme result).
    pub program: Option<retain_results::program::Program>,
}

impl std::fmt::Debug for StateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateOptions").finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(store: Store, events: EventWriter, opts: StateOptions) -> Result<Self, WebError> {
        let clock = Clock::default();
        let auth = Auth::new(
            Credentials {
                password_hash: opts.config.web.password_hash.clone(),
                token: opts.web_token,
                viewer_password_hash: opts.config.web.viewer_password_hash.clone(),
                viewer_token: opts.viewer_token,
            },
            store.clone(),
            clock.clone(),
        )?;
        Ok(Self(Arc::new(Inner {
            store,
            secret: opts.secret,
            events,
            sends: SendCache::default(),
            throttle: LoginThrottle::new(opts.login_limits, clock.clone()),
            clock,
            company_name: opts.config.company.name.clone(),
            auth,
            views: Views::new()?,
            view_renderer: opts.view_renderer,
            config: opts.config,
            pages: crate::dashboard::PageCache::default(),
            reports: crate::dashboard::ReportCache::default(),
            deliverability: crate::dashboard::DeliverabilityCache::default(),
            webhooks: opts.webhooks,
            program: opts.program,
        })))
    }
}

/// The Content-Security-Policy of every page: nothing but this server's own resources, no
/// scripts at all, inline styles (the pages' `<style>` and the SVG charts' `style` attributes),
/// images from here or `data:`, forms only to here, and no framing.
pub const CSP: &str = "default-src 'self'; script-src 'none'; object-src 'none'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// Security headers on every response: the CSP (unless the handler set its own, as `/v/` does),
/// no framing, no MIME sniffing, no referrer (tracking URLs carry tokens).
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    r
}

/// The public endpoints every campaign email links to: /o/ /c/ /v/ /u/, and the providers'
/// webhooks under /webhooks/.
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/ses", post(crate::webhooks::ses))
        .route("/webhooks/sendgrid", post(crate::webhooks::sendgrid))
        .route("/webhooks/mailgun", post(crate::webhooks::mailgun))
        .route("/webhooks/postmark", post(crate::webhooks::postmark))
        .route("/o/{token}", get(tracking::open))
        .route("/c/{token}", get(tracking::click))
        .route("/v/{token}", get(tracking::view))
        .route(
            "/u/{token}",
            get(tracking::unsubscribe_page).post(tracking::unsubscribe),
        )
}

/// The dashboard: login, logout and the pages behind them.
pub fn dashboard_routes() -> Router<AppState> {
    Router::new()
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
        .route(
            "/campaigns/{id}/report.html",
            get(dashboard::campaign_report),
        )
        .route("/campaigns/{id}/pause", post(dashboard::pause_campaign))
        .route("/campaigns/{id}/resume", post(dashboard::resume_campaign))
}

/// `/healthz` (on every listener), the security headers, the state.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Every route on one listener (the default).
pub fn router(state: AppState) -> Router {
    finish(public_routes().merge(dashboard_routes()), state)
}

/// Only the public tracking endpoints (the main listener when the dashboard has its own).
pub fn public_router(state: AppState) -> Router {
    finish(public_routes(), state)
}

/// Only the dashboard (its own listener, `web.dashboard_addr`).
pub fn dashboard_router(state: AppState) -> Router {
    finish(dashboard_routes(), state)
}

/// What a finished server did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSummary {
    pub events_written: u64,
    pub events_lost: u64,
}

/// Where [`serve`] listens: the main address, and the dashboard's own address if it has one
/// (then the main address serves only the public tracking endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub dashboard: Option<SocketAddr>,
}

async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), WebError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Serves until `shutdown` completes, then stops accepting, finishes open requests and flushes
/// every queued event. `on_bound` learns the bound addresses (port 0 picks a free one).
pub async fn serve(
    store: Store,
    listen: Listen,
    opts: StateOptions,
    writer_cfg: WriterConfig,
    on_bound: impl FnOnce(Listen),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ServeSummary, WebError> {
    let (main, main_addr) = bind(listen.addr).await?;
    let dashboard = match listen.dashboard {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let (events, task) = writer::spawn(store.clone(), writer_cfg);
    let state = match AppState::new(store, events, opts) {
        Ok(s) => s,
        Err(e) => {
            task.shutdown().await;
            return Err(e);
        }
    };
    on_bound(Listen {
        addr: main_addr,
        dashboard: dashboard.as_ref().map(|d| d.1),
    });
    // The whole-shop pages are computed once in the background, so the first visit is fast too.
    tokio::spawn(crate::dashboard::warm(state.clone()));
    // One shutdown signal for every listener.
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let main_app = if dashboard.is_some() {
        public_router(state.clone())
    } else {
        router(state.clone())
    };
    let main = axum::serve(
        main,
        main_app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(rx.clone()))
    .into_future();
    let served = match dashboard {
        Some((listener, _)) => {
            let dash = axum::serve(
                listener,
                dashboard_router(state).into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopped(rx))
            .into_future();
            let (a, b) = tokio::join!(main, dash);
            a.and(b)
        }
        None => {
            drop(state);
            main.await
        }
    };
    let stats = task.stats_handle();
    let lost = task.shutdown().await;
    served.map_err(WebError::Serve)?;
    Ok(ServeSummary {
        events_written: stats.written.load(std::sync::atomic::Ordering::Relaxed),
        events_lost: lost,
    })
}
