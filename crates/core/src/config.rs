//! Workspace configuration: `retain.toml`, with every setting overridable by an environment
//! variable `RETAIN_<SECTION>_<KEY>` (e.g. `RETAIN_SMTP_URL`). Secrets are never read from the
//! file: a `password`/`secret` key there is an error; they come from the environment only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The commented configuration written by `retain init`.
pub const DEFAULT_CONFIG: &str = r#"# retain workspace configuration.
# Every setting can be overridden by an environment variable RETAIN_<SECTION>_<KEY>,
# e.g. RETAIN_SMTP_URL, RETAIN_TRACKING_BASE_URL, RETAIN_DATABASE_URL.
# Secrets are never written here: RETAIN_SMTP_PASSWORD and RETAIN_SECRET come from the environment.

[company]
# Shown in every email footer (a postal address is required by anti-spam law in many countries).
name = "Your Shop"
address = "1 Example Street, 00000 Example City"

[sender]
# From and Reply-To of campaign emails.
from = "Your Shop <news@example.com>"
reply_to = ""

[smtp]
# lettre URL form: smtp://127.0.0.1:2525, smtps://host, smtp://host:587?tls=required.
# Empty: `retain send` writes .eml files to the outbox directory instead of sending.
url = ""
username = ""
# Messages per second per campaign (shared by every sender of the campaign, through the
# database) and parallel SMTP connections per sender.
rate = 20.0
concurrency = 4
# A 421/451 answer pauses sending to that recipient domain for every sender this long (seconds).
throttle_pause_s = 1.0

[smtp.domain_rates]
# Messages per second per recipient domain, shared by every sender and campaign. A key naming
# several domains (comma-separated) gives them one shared limit. Conservative starting points:
# mailbox providers do not publish limits; raise them as your reputation allows.
"gmail.com,googlemail.com" = 20.0
"outlook.com,hotmail.com,live.com,msn.com" = 10.0
"yahoo.com,ymail.com,aol.com" = 10.0

[tracking]
# Public base URL of `retain serve` (open pixel, clicks, unsubscribe).
base_url = "http://127.0.0.1:8080"

[sending]
# Bounces: with a domain here, every message's envelope sender (MAIL FROM, the Return-Path) is
# bounces+<signed send id>@<bounce_domain>, so each bounce names its send. Route that domain's mail
# to `retain bounces ingest -`. Empty: the envelope sender is the From address.
bounce_domain = ""
# Soft bounces (4.x.x) of one address suppress it after this many within soft_bounce_days.
soft_bounce_limit = 3
soft_bounce_days = 30
# Guardrails: a campaign pauses itself when complaints reach complaint_rate_limit or hard bounces
# hard_bounce_rate_limit of its delivered messages, once it has guardrail_min_delivered of them.
complaint_rate_limit = 0.001
hard_bounce_rate_limit = 0.02
guardrail_min_delivered = 200

[database]
# Empty: the embedded SQLite file retain.db in this workspace.
# PostgreSQL for a team or a fleet of senders: postgres://user@host/db
url = ""

[planner]
# No customer gets more than one campaign email within this many days.
frequency_cap_days = 7
# Share of each campaign's audience kept as a random control group.
holdout = 0.1

[web]
# Dashboard login: an argon2/sha256 password hash (see `retain serve --help`), or set RETAIN_WEB_TOKEN.
password_hash = ""
# A read-only login (sees every page, cannot approve or pause): its password hash, or set
# RETAIN_WEB_VIEWER_TOKEN.
viewer_password_hash = ""
# Serve the dashboard on its own address (e.g. "127.0.0.1:8081"); the main address then answers
# only the public tracking paths /o/ /c/ /v/ /u/. Empty: one address for both.
dashboard_addr = ""
# true only behind a reverse proxy you run: X-Forwarded-For (its last entry) names the client for
# the login throttle, and X-Forwarded-Proto: https marks the session cookie Secure.
trusted_proxy = false
"#;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Company {
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Sender {
    pub from: String,
    pub reply_to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Smtp {
    pub url: String,
    pub username: String,
    pub rate: f64,
    pub concurrency: u32,
    /// Seconds a 421/451 pauses its recipient domain for every sender.
    pub throttle_pause_s: f64,
    /// Messages per second per recipient domain (a comma-separated key: one shared limit).
    pub domain_rates: BTreeMap<String, f64>,
}

/// The default per-domain limits (`[smtp.domain_rates]`).
pub fn default_domain_rates() -> BTreeMap<String, f64> {
    [
        ("gmail.com,googlemail.com", 20.0),
        ("outlook.com,hotmail.com,live.com,msn.com", 10.0),
        ("yahoo.com,ymail.com,aol.com", 10.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Default for Smtp {
    fn default() -> Self {
        Self {
            url: String::new(),
            username: String::new(),
            rate: 20.0,
            concurrency: 4,
            throttle_pause_s: 1.0,
            domain_rates: default_domain_rates(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Tracking {
    pub base_url: String,
}

impl Default for Tracking {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// Bounce handling and deliverability guardrails (`[sending]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Sending {
    /// The domain of per-message return paths (`bounces+<token>@domain`); empty: none.
    pub bounce_domain: String,
    /// Soft bounces of one address within `soft_bounce_days` that suppress it.
    pub soft_bounce_limit: u32,
    pub soft_bounce_days: u32,
    /// Complaints per delivered message at which a campaign pauses (0.001 = 0.1%).
    pub complaint_rate_limit: f64,
    /// Hard bounces per delivered message at which a campaign pauses (0.02 = 2%).
    pub hard_bounce_rate_limit: f64,
    /// Rates are judged only from this many delivered messages on.
    pub guardrail_min_delivered: u32,
}

impl Default for Sending {
    fn default() -> Self {
        Self {
            bounce_domain: String::new(),
            soft_bounce_limit: 3,
            soft_bounce_days: 30,
            complaint_rate_limit: 0.001,
            hard_bounce_rate_limit: 0.02,
            guardrail_min_delivered: 200,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Planner {
    pub frequency_cap_days: u32,
    pub holdout: f64,
}

impl Default for Planner {
    fn default() -> Self {
        Self {
            frequency_cap_days: 7,
            holdout: 0.1,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Web {
    pub password_hash: String,
    /// The read-only (viewer) login's password hash.
    pub viewer_password_hash: String,
    /// The dashboard's own listen address; empty: the main one.
    pub dashboard_addr: String,
    /// Trust X-Forwarded-For / X-Forwarded-Proto from a reverse proxy.
    pub trusted_proxy: bool,
}

/// The whole configuration, after environment overrides.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub company: Company,
    pub sender: Sender,
    pub smtp: Smtp,
    pub tracking: Tracking,
    pub sending: Sending,
    pub database: Database,
    pub planner: Planner,
    pub web: Web,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: [{section}] {key}: secrets are read only from the environment ({env}); remove it from the file")]
    SecretInFile {
        file: PathBuf,
        section: String,
        key: String,
        env: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

const SECTIONS: &[&str] = &[
    "company", "sender", "smtp", "tracking", "sending", "database", "planner", "web",
];

fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") && !k.ends_with("hash") || k.contains("secret") || k == "token"
}

impl Config {
    /// Loads `retain.toml` from `path` (absent file: defaults), then applies the environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Io {
                    file: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::from_parts(path, &text, std::env::vars())
    }

    /// Parses `text` (the file at `path`) and applies overrides from `env`.
    pub fn from_parts(
        path: &Path,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            file: path.to_path_buf(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        for (section, value) in &table {
            if let Some(t) = value.as_table() {
                for key in t.keys() {
                    if is_secret(key) {
                        return Err(ConfigError::SecretInFile {
                            file: path.to_path_buf(),
                            section: section.clone(),
                            key: key.clone(),
                            env: format!(
                                "RETAIN_{}_{}",
                                section.to_uppercase(),
                                key.to_uppercase()
                            ),
                        });
                    }
                }
            }
        }
        let mut overrides: BTreeMap<String, String> = BTreeMap::new();
        for (var, value) in env {
            let Some(rest) = var.strip_prefix("RETAIN_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            for section in SECTIONS {
                if let Some(key) = rest.strip_prefix(&format!("{section}_")) {
                    if !is_secret(key) {
                        overrides.insert(format!("{section}.{key}"), value.clone());
                    }
                }
            }
        }
        let defaults =
            toml::Table::try_from(Config::default()).map_err(|e| parse_err(e.to_string()))?;
        for (dotted, value) in overrides {
            let (section, key) = dotted.split_once('.').unwrap_or((dotted.as_str(), ""));
            let known = defaults
                .get(section)
                .and_then(|s| s.as_table())
                .and_then(|s| s.get(key));
            let Some(known) = known else { continue };
            let var = format!("RETAIN_{}_{}", section.to_uppercase(), key.to_uppercase());
            let typed = match known {
                toml::Value::Integer(_) => value
                    .trim()
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| ConfigError::Env {
                        var: var.clone(),
                        message: format!("'{value}' is not an integer"),
                    })?,
                toml::Value::Float(_) => value
                    .trim()
                    .parse::<f64>()
                    .map(toml::Value::Float)
                    .map_err(|_| ConfigError::Env {
                        var: var.clone(),
                        message: format!("'{value}' is not a number"),
                    })?,
                toml::Value::Boolean(_) => value
                    .trim()
                    .parse::<bool>()
                    .map(toml::Value::Boolean)
                    .map_err(|_| ConfigError::Env {
                    var: var.clone(),
                    message: format!("'{value}' is not true/false"),
                })?,
                _ => toml::Value::String(value),
            };
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(t) = entry.as_table_mut() {
                t.insert(key.to_string(), typed);
            }
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))
    }

    /// The provider webhooks' keys and credentials, from the environment only.
    pub fn webhook_secrets() -> WebhookSecrets {
        WebhookSecrets::from_vars(std::env::vars())
    }

    /// The SMTP password, from `RETAIN_SMTP_PASSWORD` only.
    pub fn smtp_password() -> Option<String> {
        std::env::var("RETAIN_SMTP_PASSWORD")
            .ok()
            .filter(|s| !s.is_empty())
    }
}

/// What `retain serve` verifies provider webhooks with, read from the environment only (never
/// from `retain.toml`, never printed). An endpoint whose settings are missing answers 404.
#[derive(Clone, Default, PartialEq)]
pub struct WebhookSecrets {
    /// `RETAIN_WEBHOOK_SES_CERT`: a pinned SNS signing certificate (PEM text, or the path of a
    /// PEM file), used instead of fetching the message's SigningCertURL.
    pub ses_cert: Option<String>,
    /// `RETAIN_WEBHOOK_SES_TOPIC_ARN`: only messages of this SNS topic are accepted.
    pub ses_topic_arn: Option<String>,
    /// `RETAIN_WEBHOOK_SES`: set to `1` to accept SES notifications verified by fetched
    /// certificates (without a pinned one).
    pub ses_enabled: bool,
    /// `RETAIN_WEBHOOK_SENDGRID_PUBLIC_KEY`: the Signed Event Webhook's verification key (base64
    /// DER or PEM, as SendGrid shows it).
    pub sendgrid_public_key: Option<String>,
    /// `RETAIN_WEBHOOK_MAILGUN_SIGNING_KEY`: Mailgun's HTTP webhook signing key.
    pub mailgun_signing_key: Option<String>,
    /// `RETAIN_WEBHOOK_POSTMARK_USER` and `RETAIN_WEBHOOK_POSTMARK_PASSWORD`: the basic-auth
    /// credentials configured in Postmark's webhook URL.
    pub postmark_user: Option<String>,
    pub postmark_password: Option<String>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Which are set, never their values.
        f.debug_struct("WebhookSecrets")
            .field("ses", &(self.ses_enabled || self.ses_cert.is_some()))
            .field("sendgrid", &self.sendgrid_public_key.is_some())
            .field("mailgun", &self.mailgun_signing_key.is_some())
            .field("postmark", &self.postmark_user.is_some())
            .finish()
    }
}

impl WebhookSecrets {
    /// From `RETAIN_WEBHOOK_*` variables (empty values count as unset).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut s = Self::default();
        for (k, v) in vars {
            if v.trim().is_empty() {
                continue;
            }
            match k.as_str() {
                "RETAIN_WEBHOOK_SES_CERT" => s.ses_cert = Some(v),
                "RETAIN_WEBHOOK_SES_TOPIC_ARN" => s.ses_topic_arn = Some(v.trim().to_string()),
                "RETAIN_WEBHOOK_SES" => s.ses_enabled = matches!(v.trim(), "1" | "true" | "yes"),
                "RETAIN_WEBHOOK_SENDGRID_PUBLIC_KEY" => s.sendgrid_public_key = Some(v),
                "RETAIN_WEBHOOK_MAILGUN_SIGNING_KEY" => s.mailgun_signing_key = Some(v),
                "RETAIN_WEBHOOK_POSTMARK_USER" => s.postmark_user = Some(v),
                "RETAIN_WEBHOOK_POSTMARK_PASSWORD" => s.postmark_password = Some(v),
                _ => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn default_file_parses_to_defaults_plus_text() {
        let c =
            Config::from_parts(Path::new("retain.toml"), DEFAULT_CONFIG, env(&[])).expect("parses");
        assert_eq!(c.smtp.url, "");
        assert_eq!(c.planner.frequency_cap_days, 7);
        assert_eq!(c.company.name, "Your Shop");
    }

    #[test]
    fn environment_overrides_every_section() {
        let c = Config::from_parts(
            Path::new("retain.toml"),
            DEFAULT_CONFIG,
            env(&[
                ("RETAIN_SMTP_URL", "smtp://127.0.0.1:2525"),
                ("RETAIN_TRACKING_BASE_URL", "https://t.example.com"),
                ("RETAIN_DATABASE_URL", "postgres://x/y"),
                ("RETAIN_SMTP_RATE", "5"),
                ("RETAIN_PLANNER_FREQUENCY_CAP_DAYS", "3"),
                ("RETAIN_WORKSPACE", "/elsewhere"),
                ("OTHER", "x"),
            ]),
        )
        .expect("parses");
        assert_eq!(c.smtp.url, "smtp://127.0.0.1:2525");
        assert_eq!(c.tracking.base_url, "https://t.example.com");
        assert_eq!(c.database.url, "postgres://x/y");
        assert!((c.smtp.rate - 5.0).abs() < 1e-12);
        assert_eq!(c.planner.frequency_cap_days, 3);
        let e = Config::from_parts(
            Path::new("r.toml"),
            "",
            env(&[("RETAIN_SMTP_RATE", "fast")]),
        )
        .expect_err("bad");
        assert!(e.to_string().contains("RETAIN_SMTP_RATE"), "{e}");
    }

    #[test]
    fn secrets_in_the_file_are_refused_and_typos_are_errors() {
        let e = Config::from_parts(
            Path::new("r.toml"),
            "[smtp]\npassword = \"hunter2\"\n",
            env(&[]),
        )
        .expect_err("secret");
        assert!(e.to_string().contains("RETAIN_SMTP_PASSWORD"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        let e = Config::from_parts(Path::new("r.toml"), "[smtp]\nurll = \"x\"\n", env(&[]))
            .expect_err("typo");
        assert!(e.to_string().contains("urll"), "{e}");
    }

    #[test]
    fn sending_keys_default_and_from_the_environment() {
        let d = Config::from_parts(Path::new("r.toml"), DEFAULT_CONFIG, env(&[])).expect("default");
        assert_eq!(d.sending, Sending::default());
        assert_eq!(d.sending.soft_bounce_limit, 3);
        let c = Config::from_parts(
            Path::new("r.toml"),
            DEFAULT_CONFIG,
            env(&[
                ("RETAIN_SENDING_BOUNCE_DOMAIN", "bounce.shop.example"),
                ("RETAIN_SENDING_GUARDRAIL_MIN_DELIVERED", "10"),
                ("RETAIN_SENDING_COMPLAINT_RATE_LIMIT", "0.003"),
            ]),
        )
        .expect("parses");
        assert_eq!(c.sending.bounce_domain, "bounce.shop.example");
        assert_eq!(c.sending.guardrail_min_delivered, 10);
        assert!((c.sending.complaint_rate_limit - 0.003).abs() < 1e-12);
        // "sender" is not a prefix of "sending": the sender section is untouched.
        assert_eq!(c.sender, d.sender);
    }

    #[test]
    fn webhook_secrets_come_from_the_environment_and_are_not_debug_printed() {
        let s = WebhookSecrets::from_vars(env(&[
            ("RETAIN_WEBHOOK_MAILGUN_SIGNING_KEY", "key-abc"),
            ("RETAIN_WEBHOOK_POSTMARK_USER", "pm"),
            ("RETAIN_WEBHOOK_POSTMARK_PASSWORD", "hunter2"),
            ("RETAIN_WEBHOOK_SENDGRID_PUBLIC_KEY", ""),
        ]));
        assert_eq!(s.mailgun_signing_key.as_deref(), Some("key-abc"));
        assert_eq!(s.sendgrid_public_key, None);
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("key-abc") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn web_keys_from_the_file_and_the_environment() {
        let c = Config::from_parts(
            Path::new("r.toml"),
            "[web]\nviewer_password_hash = \"$argon2id$x\"\ndashboard_addr = \"127.0.0.1:8081\"\n",
            env(&[("RETAIN_WEB_TRUSTED_PROXY", "true")]),
        )
        .expect("parses");
        assert_eq!(c.web.viewer_password_hash, "$argon2id$x");
        assert_eq!(c.web.dashboard_addr, "127.0.0.1:8081");
        assert!(c.web.trusted_proxy);
        let d = Config::from_parts(Path::new("r.toml"), DEFAULT_CONFIG, env(&[])).expect("default");
        assert!(!d.web.trusted_proxy && d.web.dashboard_addr.is_empty());
        // A viewer token is a secret: never from the file.
        let e = Config::from_parts(Path::new("r.toml"), "[web]\ntoken = \"t\"\n", env(&[]))
            .expect_err("secret");
        assert!(e.to_string().contains("RETAIN_WEB_TOKEN"), "{e}");
    }
}
