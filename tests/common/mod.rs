//! Helpers shared by the end-to-end tests of the `retain` binary: a command bound to a
//! workspace, a fresh temporary workspace, and paths inside the repository.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub mod smtp;

/// `retain --workspace WS`, with the environment's workspace and database overrides removed.
pub fn retain(ws: &Path) -> Command {
    let mut c = Command::cargo_bin("retain").expect("binary");
    c.arg("--workspace").arg(ws);
    c.env_remove("RETAIN_DATABASE_URL")
        .env_remove("RETAIN_WORKSPACE");
    c
}

/// A new workspace made by `retain init` in a temporary directory (kept alive by the guard).
pub fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    Command::cargo_bin("retain")
        .expect("binary")
        .args(["init", "-q"])
        .arg(&ws)
        .assert()
        .success();
    (dir, ws)
}

/// A path inside the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Reports a skipped (part of a) test as `SKIP: <test>: <why>`, straight to stderr (past the
/// harness's capture) so the test script lists it; a failure instead when the dependency is
/// required (`RETAIN_REQUIRE_POSTGRES=1`).
pub fn skip_postgres(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    if std::env::var("RETAIN_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("{test}: {why}, but RETAIN_REQUIRE_POSTGRES=1");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIP: {test}: {why}");
}

/// A fresh PostgreSQL database on the server `RETAIN_TEST_POSTGRES` names, dropped with this
/// guard.
#[derive(Debug)]
pub struct PgDb {
    /// `postgres://…/retain_test_<pid>_<n>`.
    pub url: String,
    base: String,
    name: String,
}

/// Runs one statement on the server's `postgres` database (from any context: its own thread
/// and runtime).
fn pg_admin(base: &str, sql: String) -> Result<(), String> {
    let url = format!("{base}/postgres");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url)
                .await
                .map_err(|e| format!("connect to {url}: {e}"))?;
            sqlx::query(&sql)
                .execute(&mut c)
                .await
                .map_err(|e| format!("{sql}: {e}"))?;
            c.close().await.map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_string())?
}

/// A new database when `RETAIN_TEST_POSTGRES` names a server; otherwise `None` after
/// [`skip_postgres`] (a failure when PostgreSQL is required).
pub fn postgres() -> Option<PgDb> {
    let Some(base) = std::env::var("RETAIN_TEST_POSTGRES")
        .ok()
        .filter(|b| !b.is_empty())
    else {
        skip_postgres("RETAIN_TEST_POSTGRES is not set, PostgreSQL not tested");
        return None;
    };
    let base = base.trim_end_matches('/').to_string();
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "retain_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    pg_admin(&base, format!("CREATE DATABASE {name}")).expect("create the test database");
    Some(PgDb {
        url: format!("{base}/{name}"),
        base,
        name,
    })
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let dropped = pg_admin(
            &self.base,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        if let Err(e) = dropped {
            if !std::thread::panicking() {
                panic!("dropping {}: {e}", self.name);
            }
        }
    }
}

/// Points the workspace `ws` at the database `url` (`database.url` in its retain.toml).
pub fn use_database(ws: &Path, url: &str) {
    let cfg = ws.join("retain.toml");
    let text = std::fs::read_to_string(&cfg).expect("retain.toml");
    let (head, tail) = text.split_once("[database]").expect("a [database] section");
    let tail = tail.replacen("url = \"\"", &format!("url = \"{url}\""), 1);
    std::fs::write(&cfg, format!("{head}[database]{tail}")).expect("write retain.toml");
}

/// The database URL of a workspace: its `database.url`, else its SQLite file.
pub fn database_url(ws: &Path) -> String {
    let text = std::fs::read_to_string(ws.join("retain.toml")).expect("retain.toml");
    text.split_once("[database]")
        .and_then(|(_, t)| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("url = \""))
                .and_then(|v| v.strip_suffix('"'))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("sqlite://{}", ws.join("retain.db").display()))
}
