//! Helpers shared by the end-to-end tests of the `retain` binary: a command bound to a
//! workspace, a fresh temporary workspace, and paths inside the repository.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};

use assert_cmd::Command;

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
