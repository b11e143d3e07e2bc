//! The commands of the CLI, one module each, and what they share: the workspace [`Context`],
//! exit codes ([`Failure`]) and progress bars.

pub mod bounces;
pub mod campaign;
pub mod customer;
pub mod db;
pub mod demo;
pub mod demo_data;
pub mod demo_results;
pub mod doctor;
pub mod followups;
pub mod import;
pub mod init;
pub mod mail;
pub mod plan;
pub mod predict;
pub mod recommend;
pub mod report;
pub mod rfm;
pub mod segment;
pub mod send;
pub mod serve;
pub mod stats;
pub mod suppress;
pub mod uplift;
pub mod worker;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use retain_core::config::Config;
use retain_store::Store;

/// Exit codes, as documented in `retain --help` and docs/cli.md.
pub mod exit {
    /// A runtime failure (I/O, database, network).
    pub const FAILURE: u8 = 1;
    /// Bad input data: a rejected file, a bad goals file, a bad configuration.
    pub const BAD_INPUT: u8 = 3;
    /// A precondition is not met: not a workspace, nothing imported yet, unknown id.
    pub const PRECONDITION: u8 = 4;
}

/// An error with a chosen exit code (anything else exits with [`exit::FAILURE`]).
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Builds an error that exits with `code`.
pub fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code,
        message: message.into(),
    })
}

/// The exit code for an error: a [`Failure`]'s own, [`exit::BAD_INPUT`] for import and
/// configuration errors, else [`exit::FAILURE`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.code;
        }
        if cause.is::<retain_core::import::ImportError>()
            || cause.is::<retain_core::config::ConfigError>()
            || matches!(
                cause.downcast_ref::<retain_store::StoreError>(),
                Some(retain_store::StoreError::Import(_))
            )
        {
            return exit::BAD_INPUT;
        }
    }
    exit::FAILURE
}

/// An opened workspace: its directory, configuration and database.
#[derive(Debug)]
pub struct Context {
    pub dir: PathBuf,
    #[allow(dead_code)] // read by the sending and serving commands
    pub config: Config,
    pub store: Store,
}

pub const CONFIG_FILE: &str = "retain.toml";
pub const DATABASE_FILE: &str = "retain.db";

impl Context {
    /// Opens the workspace at `dir`, which must have been made by `retain init`.
    pub async fn open(dir: &Path) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(fail(
                exit::PRECONDITION,
                format!(
                    "{} is not a retain workspace (no {CONFIG_FILE}). Create one with `retain init {}` or choose one with --workspace DIR",
                    dir.display(),
                    dir.display()
                ),
            ));
        }
        let config = Config::load(&config_path)?;
        let store = open_store(dir, &config).await?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            store,
        })
    }

    /// A path inside the workspace.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// Opens the workspace's database: `database.url`, or the embedded SQLite file.
pub async fn open_store(dir: &Path, config: &Config) -> Result<Store> {
    if config.database.url.is_empty() {
        let path = dir.join(DATABASE_FILE);
        Store::open_sqlite(&path)
            .await
            .with_context(|| format!("opening the workspace database {}", path.display()))
    } else {
        // The URL may hold a password: never print it.
        Store::open(&config.database.url)
            .await
            .context("opening the database named by database.url / RETAIN_DATABASE_URL")
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal), or a hidden one when `show`
/// is false.
pub fn progress(len: u64, what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {human_pos}/{human_len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A spinner on stderr for work of unknown length.
pub fn spinner(what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_message(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// Frees `value` on another thread and returns its handle: a million customer records take about
/// a second to free, which the caller spends storing or printing instead. Join the handle to free
/// within the command; a detached one may be cut short by the process's exit, which returns the
/// memory anyway.
pub fn free_apart<T: Send + 'static>(value: T) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || drop(value))
}
