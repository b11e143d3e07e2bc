//! `retain serve`: the tracking endpoints (open pixel, clicks, view in browser, unsubscribe) and
//! the dashboard, until Ctrl-C or SIGTERM; then open requests finish and every recorded event is
//! written before exit. `--dashboard-addr` (or `web.dashboard_addr`) puts the dashboard on an
//! address of its own. `--hash-password` prints a password hash for `web.password_hash`.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args as ClapArgs;
use retain_core::tracking::load_secret;
use retain_web::{Listen, LoginLimits, StateOptions, WriterConfig};

use super::{exit, fail, Context};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain serve                                  # http://127.0.0.1:8080
  retain serve --addr 0.0.0.0:8080              # behind a reverse proxy that terminates TLS
  retain serve --addr 0.0.0.0:8080 --dashboard-addr 127.0.0.1:8081   # dashboard not public
  echo 'a long passphrase' | retain serve --hash-password

The public tracking paths /o/ /c/ /v/ /u/ need no login. The dashboard (/) needs the password whose
hash is web.password_hash in retain.toml, or the token in the environment variable RETAIN_WEB_TOKEN;
a read-only login (every page, no approve/pause/resume) uses web.viewer_password_hash or
RETAIN_WEB_VIEWER_TOKEN. Failed logins are throttled (5 per client per 15 minutes, 100 overall
per minute: HTTP 429). Behind a reverse proxy set web.trusted_proxy = true so X-Forwarded-For
names the client and X-Forwarded-Proto: https makes the cookies Secure.
tracking.base_url must be the public address of this server, as emails link to it.

Provider webhooks (bounces and complaints), each on when its settings are in the environment:
  POST /webhooks/ses        RETAIN_WEBHOOK_SES=1 or RETAIN_WEBHOOK_SES_CERT (pinned PEM or path),
                            optional RETAIN_WEBHOOK_SES_TOPIC_ARN
  POST /webhooks/sendgrid   RETAIN_WEBHOOK_SENDGRID_PUBLIC_KEY
  POST /webhooks/mailgun    RETAIN_WEBHOOK_MAILGUN_SIGNING_KEY
  POST /webhooks/postmark   RETAIN_WEBHOOK_POSTMARK_USER and RETAIN_WEBHOOK_POSTMARK_PASSWORD
A request whose signature or credentials do not verify is refused (401/403) and records nothing.")]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Serve the dashboard on this address of its own (e.g. 127.0.0.1:8081); --addr then serves
    /// only the public tracking paths /o/ /c/ /v/ /u/. Default: web.dashboard_addr, else --addr.
    #[arg(long, value_name = "ADDR")]
    pub dashboard_addr: Option<SocketAddr>,
    /// Read a password from standard input, print its argon2 hash for web.password_hash, exit.
    #[arg(long)]
    pub hash_password: bool,
    /// Write recorded events at least this often (milliseconds).
    #[arg(long, default_value_t = 50)]
    pub flush_ms: u64,
    /// Write recorded events as soon as this many are waiting.
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
}

/// `--hash-password`: the hash of the first line of standard input.
fn hash_password() -> Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    let password = input.lines().next().unwrap_or("").trim_end_matches('\r');
    if password.chars().count() < 8 {
        return Err(fail(
            exit::BAD_INPUT,
            "the password must be at least 8 characters long",
        ));
    }
    let hash = retain_web::auth::hash_password(password)?;
    println!("{hash}");
    eprintln!("Put it in retain.toml:\n\n[web]\npassword_hash = \"{hash}\"");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `/v/<token>`: re-renders the send's email with the mailer, exactly as it was composed for
/// sending (campaigns are loaded once and kept).
fn view_renderer(ctx: &Context) -> retain_web::ViewFn {
    type Loaded = Arc<super::send::Loaded>;
    let ctx = Arc::new(Context {
        dir: ctx.dir.clone(),
        config: ctx.config.clone(),
        store: ctx.store.clone(),
    });
    let loaded: Arc<Mutex<HashMap<String, Loaded>>> = Arc::default();
    Arc::new(move |send_id: i64| {
        let ctx = ctx.clone();
        let loaded = loaded.clone();
        Box::pin(async move {
            let send = ctx.store.send(send_id).await.ok()??;
            let cached = loaded
                .lock()
                .ok()
                .and_then(|m| m.get(&send.campaign_id).cloned());
            let campaign = match cached {
                Some(c) => c,
                None => {
                    let opts = super::send::MailOptions {
                        discount: None,
                        code_prefix: None,
                        shop_url: None,
                    };
                    let c = Arc::new(
                        super::send::load(&ctx, &send.campaign_id, &opts)
                            .await
                            .ok()?,
                    );
                    if let Ok(mut m) = loaded.lock() {
                        m.insert(send.campaign_id.clone(), c.clone());
                    }
                    c
                }
            };
            let recipient = campaign.recipients.get(&send.customer_id)?;
            campaign
                .composer
                .render(send_id, &send.email, recipient)
                .ok()
                .map(|r| r.html)
        })
    })
}

pub async fn run(workspace: &Path, args: Args, quiet: bool) -> Result<()> {
    if args.hash_password {
        return hash_password();
    }
    let ctx = Context::open(workspace).await?;
    let secret = load_secret(&ctx.dir).map_err(|e| fail(exit::PRECONDITION, e.to_string()))?;
    let web_token = std::env::var("RETAIN_WEB_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let viewer_token = std::env::var("RETAIN_WEB_VIEWER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let login = !ctx.config.web.password_hash.trim().is_empty()
        || web_token.is_some()
        || !ctx.config.web.viewer_password_hash.trim().is_empty()
        || viewer_token.is_some();
    let dashboard = match &args.dashboard_addr {
        Some(a) => Some(*a),
        None if ctx.config.web.dashboard_addr.trim().is_empty() => None,
        None => Some(
            ctx.config
                .web
                .dashboard_addr
                .trim()
                .parse::<SocketAddr>()
                .map_err(|e| {
                    fail(
                        exit::BAD_INPUT,
                        format!(
                            "web.dashboard_addr '{}' is not an address like 127.0.0.1:8081: {e}",
                            ctx.config.web.dashboard_addr
                        ),
                    )
                })?,
        ),
    };
    // Fetches SNS signing certificates that are not pinned (and confirms SNS subscriptions).
    let fetch = retain_web::webhooks::fetch::https_fetcher(Duration::from_secs(10)).ok();
    let webhooks =
        retain_web::webhooks::Webhooks::new(&retain_core::config::Config::webhook_secrets(), fetch)
            .map_err(|e| fail(exit::PRECONDITION, e))?;
    let enabled = webhooks.enabled().join(", ");
    let opts = StateOptions {
        config: ctx.config.clone(),
        secret,
        web_token,
        viewer_token,
        view_renderer: Some(view_renderer(&ctx)),
        login_limits: LoginLimits::default(),
        webhooks,
        // A goals file that does not parse only hides the programme's result.
        program: super::report::workspace_program(&ctx).unwrap_or_else(|e| {
            eprintln!("warning: the overview shows no programme result: {e:#}");
            None
        }),
    };
    let writer = WriterConfig {
        flush_every: Duration::from_millis(args.flush_ms.max(1)),
        max_batch: args.batch.max(1),
        ..WriterConfig::default()
    };
    let base_url = ctx.config.tracking.base_url.clone();
    let summary = retain_web::serve(
        ctx.store.clone(),
        Listen {
            addr: args.addr,
            dashboard,
        },
        opts,
        writer,
        move |bound| {
            if !quiet {
                let addr = bound.addr;
                eprintln!("retain serve: listening on http://{addr} (tracking links use {base_url})");
                if let Some(d) = bound.dashboard {
                    eprintln!("retain serve: dashboard on http://{d} (only /o/ /c/ /v/ /u/ on http://{addr})");
                }
                if !enabled.is_empty() {
                    eprintln!("retain serve: provider webhooks at {enabled}");
                }
                if !login {
                    eprintln!(
                        "retain serve: the dashboard is closed until web.password_hash or RETAIN_WEB_TOKEN is set"
                    );
                }
            }
        },
        shutdown_signal(),
    )
    .await
    .map_err(|e| match e {
        retain_web::WebError::Auth(a) => fail(exit::BAD_INPUT, a.to_string()),
        other => anyhow::Error::new(other),
    })?;
    ctx.store.close().await;
    if !quiet {
        eprintln!(
            "retain serve: stopped; {} events written",
            summary.events_written
        );
    }
    if summary.events_lost > 0 {
        return Err(anyhow::anyhow!(
            "{} events could not be written to the database",
            summary.events_lost
        ));
    }
    Ok(())
}
