//! The mailer's error type: template, configuration, header, store and transport failures, each
//! naming what to fix.

use std::path::PathBuf;

use crate::transport::TransportError;

/// Errors of rendering and sending.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// A template does not compile or does not render (syntax error, undefined variable, bad
    /// filter argument).
    #[error("template {template}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Template {
        template: String,
        line: Option<usize>,
        message: String,
    },
    #[error("no template '{name}' in {dir} (expected {name}.html; {name}.subject and {name}.txt are optional)")]
    TemplateMissing { name: String, dir: PathBuf },
    #[error("configuration: {0}")]
    Config(String),
    #[error("{field}: {message}")]
    Header { field: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] retain_store::StoreError),
    #[error(transparent)]
    Secret(#[from] retain_core::tracking::SecretError),
    #[error("campaign {campaign} is {state}")]
    CampaignStopped { campaign: String, state: String },
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The database failed while sending (marking a row `sending`, a shared rate slot): the run
    /// stopped; rows not yet marked went back to the queue.
    #[error("the send stopped because the database failed: {0}")]
    Ledger(String),
}

impl MailerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Converts a tera error into [`MailerError::Template`], keeping the line and the message.
pub(crate) fn template_error(fallback_name: &str, e: &tera::Error) -> MailerError {
    use std::error::Error as _;
    match e.kind() {
        tera::ErrorKind::SyntaxError(r) | tera::ErrorKind::RenderingError(r) => {
            MailerError::Template {
                template: if r.filename().is_empty() {
                    fallback_name.to_string()
                } else {
                    r.filename().to_string()
                },
                line: Some(r.span().start_line),
                message: r.message().to_string(),
            }
        }
        _ => {
            let mut message = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                message.push_str(": ");
                message.push_str(&s.to_string());
                src = s.source();
            }
            MailerError::Template {
                template: fallback_name.to_string(),
                line: None,
                message,
            }
        }
    }
}
