//! `retain-web`: the HTTP side of retain, and campaign results.
//!
//! - [`tracking`]: the public endpoints every campaign email links to (open pixel, click
//!   redirect, view in browser, unsubscribe with RFC 8058 one-click), writing events through the
//!   batched [`writer`].
//! - [`report`] and [`stats`]: attribution of purchases to campaigns, uplift against the
//!   holdout with confidence intervals, ROI — pure functions the CLI (`retain report`) calls
//!   without HTTP; [`results`] loads their inputs from the store.
//! - [`dashboard`], [`views`], [`svg`]: the server-rendered dashboard behind a login ([`auth`],
//!   throttled by [`throttle`]).
//! - [`server`]: the router and the run loop of `retain serve`.

pub mod auth;
pub mod dashboard;
pub mod report;
pub mod results;
pub mod server;
pub mod shop;
pub mod stats;
pub mod svg;
pub mod throttle;
pub mod tracking;
pub mod views;
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
