//! `retain-mailer`: email rendering and sending for retain — tera templates ([`templates`],
//! [`context`]), MIME messages with one-click unsubscribe and optional DKIM ([`message`]),
//! transports (SMTP via lettre, `.eml` files, a stub; [`transport`]), pacing ([`throttle`]) and
//! the exactly-once send engine over the store's ledger ([`engine`]). Bounce and complaint
//! reports are read by [`bounces`] and acted on by [`deliverability`] (suppressions, the
//! campaign guardrail). Several senders share campaigns through [`workers`] (`retain worker`). [`testkit`] is an
//! in-process SMTP server with fault injection, for tests and benchmarks.

pub mod bounces;
pub mod composer;
pub mod context;
pub mod deliverability;
pub mod dns_auth;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod followups;
pub mod html_text;
mod inline;
pub mod message;
pub mod templates;
pub mod testkit;
pub mod throttle;
pub mod transport;
pub mod workers;

pub use composer::{sample_recipient, Composer};
pub use context::{CampaignInfo, Offer, ProductCard, Recipient, Scores, Shared};
pub use deliverability::{
    check_guardrail, guardrail_between_batches, GuardrailCheck, GuardrailLimits, Ingest,
    IngestSettings, Ingested, ItemResult, MatchedBy, ProviderEvent,
};
pub use engine::{
    dry_run, queue_campaign, send_campaign, DryRunReport, Member, Progress, QueueSummary,
    SendOptions, SendReport, StopReason,
};
pub use error::MailerError;
pub use followups::{create_due_steps, sendable_steps, DueStep, FollowupOptions};
pub use message::{Dkim, Identity, OutgoingMessage};
pub use templates::{Rendered, TemplateSet};
pub use transport::{
    FileTransport, SmtpSettings, SmtpTransport, StubReply, StubTransport, Transport, TransportError,
};
pub use workers::{run_worker, LoadedCampaign, StepWork, WorkerOptions, WorkerReport};
