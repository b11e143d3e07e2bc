//! `retain db migrate|status|copy`: the workspace's database — apply migrations, show the
//! backend with applied and pending migrations, and copy a whole workspace to another database
//! (SQLite ⇄ PostgreSQL) with per-table row counts and checksums compared.

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use retain_core::config::Config;
use retain_store::{Backend, Store};
use serde::Serialize;

use super::{exit, fail, CONFIG_FILE, DATABASE_FILE};
use crate::output::{print_json, Format, Table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations (every command does this on opening; this does only that).
    Migrate {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The backend and every migration, applied or pending (without applying any).
    Status {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Copy the whole workspace database into another, empty one, then compare row counts and
    /// per-table checksums (exit 1 when any table differs).
    #[command(after_help = "Examples:
  retain db copy --to postgres://retain@db.internal/retain   # then set database.url to it
  retain db copy --to sqlite:///backups/retain-copy.db

The target is migrated first and must be empty. Tables are streamed in pages (--page rows at a
time); nothing is held whole in memory. The URL's password, if any, is never printed.")]
    Copy {
        /// The target database: postgres://… or sqlite://PATH.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Rows per page.
        #[arg(long, default_value_t = 5000)]
        page: usize,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

/// The workspace's database URL (never printed: it may hold a password).
fn workspace_url(dir: &Path) -> Result<(String, String)> {
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Err(fail(
            exit::PRECONDITION,
            format!(
                "{} is not a retain workspace (no {CONFIG_FILE})",
                dir.display()
            ),
        ));
    }
    let config = Config::load(&config_path)?;
    Ok(if config.database.url.is_empty() {
        let p = dir.join(DATABASE_FILE);
        (format!("sqlite://{}", p.display()), p.display().to_string())
    } else {
        (config.database.url.clone(), redact(&config.database.url))
    })
}

/// A URL with its password replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    }
}

#[derive(Serialize)]
struct Status {
    backend: &'static str,
    database: String,
    migrations: Vec<retain_store::MigrationStatus>,
    pending: usize,
}

fn print_status(s: &Status, format: Format) -> Result<()> {
    if format == Format::Json {
        return print_json(s);
    }
    println!("{} database {}", s.backend, s.database);
    let mut t = Table::new(["version", "name", "applied"]);
    for m in &s.migrations {
        t.row([
            format!("{:04}", m.version),
            m.name.clone(),
            m.applied_at
                .and_then(|a| chrono::DateTime::from_timestamp(a, 0))
                .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "pending".into()),
        ]);
    }
    print!("{}", t.render());
    println!("{} pending", s.pending);
    Ok(())
}

async fn status(store: &Store, shown: String) -> Result<Status> {
    let migrations = store.migration_status().await?;
    let pending = migrations.iter().filter(|m| m.applied_at.is_none()).count();
    Ok(Status {
        backend: backend_name(store.backend()),
        database: shown,
        migrations,
        pending,
    })
}

#[derive(Serialize)]
struct CopyReport {
    from: String,
    to: String,
    tables: Vec<retain_store::TableCopy>,
    all_match: bool,
}

pub async fn run(dir: &Path, cmd: Command) -> Result<()> {
    let (url, shown) = workspace_url(dir)?;
    match cmd {
        Command::Status { format } => {
            let store = Store::open_without_migrating(&url)
                .await
                .context("opening the workspace database")?;
            print_status(&status(&store, shown).await?, format)
        }
        Command::Migrate { format } => {
            let store = Store::open(&url)
                .await
                .context("opening and migrating the workspace database")?;
            print_status(&status(&store, shown).await?, format)
        }
        Command::Copy { to, page, format } => {
            let from = Store::open(&url)
                .await
                .context("opening the workspace database")?;
            let to_shown = redact(&to);
            let target = Store::open(&to)
                .await
                .with_context(|| format!("opening the target database {to_shown}"))?;
            let quiet = format == Format::Json;
            let tables = from
                .copy_to(&target, page.clamp(1, 100_000), |t, n| {
                    if !quiet {
                        eprintln!("  {t}: {n} rows copied");
                    }
                })
                .await
                .map_err(|e| match e {
                    retain_store::StoreError::Conflict(m) => fail(exit::PRECONDITION, m),
                    other => other.into(),
                })?;
            target.close().await;
            let rep = CopyReport {
                from: shown,
                to: to_shown,
                all_match: tables.iter().all(|t| t.matches()),
                tables,
            };
            if format == Format::Json {
                print_json(&rep)?;
            } else {
                println!("Copied {} → {}", rep.from, rep.to);
                let mut t = Table::new([
                    "table",
                    "rows here",
                    "rows there",
                    "checksum here",
                    "checksum there",
                    "",
                ]);
                for c in &rep.tables {
                    t.row([
                        c.table.clone(),
                        c.source_rows.to_string(),
                        c.target_rows.to_string(),
                        c.source_checksum.clone(),
                        c.target_checksum.clone(),
                        if c.matches() { "ok" } else { "DIFFERS" }.to_string(),
                    ]);
                }
                print!("{}", t.render());
            }
            if !rep.all_match {
                return Err(fail(
                    exit::FAILURE,
                    "the copy differs from the source (see the table)",
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}
