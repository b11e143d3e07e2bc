//! `retain-web`: the HTTP side of retain.
//!
//! - [`tracking`]: the public endpoints every campaign email links to (open pixel, click
//!   redirect, view in browser, unsubscribe with RFC 8058 one-click), writing events through the
//!   batched [`writer`].
//! - [`report`], [`stats`] and [`results`]: re-exported from `retain-results`, the crate that
//!   owns campaign analysis (the dashboard shows it; it does not compute it).
//! - [`dashboard`], [`views`], [`svg`]: the server-rendered dashboard behind a login ([`auth`],
//!   throttled by [`throttle`]).
//! - [`webhooks`]: bounce and complaint events from email providers (SES via SNS, SendGrid,
//!   Mailgun, Postmark), verified, then acted on by the mailer's ingest.
//! - [`server`]: the router and the run loop of `retain serve`.

pub mod auth;
// The analysis lives in its own crate; its modules stay reachable under their old paths.
pub use retain_results::{report, results, stats};
pub mod dashboard;
pub mod replay;
pub mod server;
pub mod shop;
pub mod svg;
pub mod throttle;
pub mod tracking;
pub mod views;
pub mod webhooks;
pub mod writer;

pub use server::{
    dashboard_router, public_router, router, serve, AppState, Listen, ServeSummary, StateOptions,
    ViewFn,
};
pub use throttle::LoginLimits;
pub use writer::WriterConfig;

/// Errors of the web crate.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("template error: {0}")]
    Template(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}
