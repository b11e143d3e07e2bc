//! A real SMTP server process for the end-to-end tests: Python's aiosmtpd, either delivering into
//! a Maildir ([`maildir_server`]) or a script of the repository such as `scripts/smtp_sink.py`
//! ([`script_server`]); both print their port on their first line. The process is killed and
//! reaped when its guard is dropped.
//!
//! Needs a Python with aiosmtpd (`RETAIN_TEST_PYTHON`, else `<repo>/.venv/bin/python`, else
//! `python3`); [`python_or_skip`] reports a skip without one, or fails when
//! `RETAIN_REQUIRE_AIOSMTPD=1`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Kills (SIGKILL) and reaps a child process when dropped, whatever happened.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Python that can import aiosmtpd.
pub fn python() -> Option<PathBuf> {
    [
        std::env::var_os("RETAIN_TEST_PYTHON").map(PathBuf::from),
        Some(super::repo(".venv/bin/python")),
        Some(PathBuf::from("python3")),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// [`python`], or `None` after printing `SKIP: <what>: …` (a panic instead when
/// `RETAIN_REQUIRE_AIOSMTPD=1`).
pub fn python_or_skip(what: &str) -> Option<PathBuf> {
    let py = python();
    if py.is_none() {
        let msg = format!(
            "SKIP: {what}: no Python with aiosmtpd (pip install aiosmtpd, or set RETAIN_TEST_PYTHON)"
        );
        if std::env::var("RETAIN_REQUIRE_AIOSMTPD").is_ok_and(|v| v == "1") {
            panic!("{msg}");
        }
        let _ = writeln!(std::io::stderr().lock(), "{msg}");
    }
    py
}

const MAILDIR_SERVER: &str = r#"
import asyncio, sys
from aiosmtpd.smtp import SMTP
from aiosmtpd.handlers import Mailbox
handler = Mailbox(sys.argv[1])
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
server = loop.run_until_complete(loop.create_server(lambda: SMTP(handler, loop=loop), "127.0.0.1", 0))
print(server.sockets[0].getsockname()[1], flush=True)
loop.run_forever()
"#;

/// Starts `py ARGS…` and reads the port the server prints on its first line.
fn start(mut cmd: Command) -> (Reaped, u16) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the SMTP server");
    let mut line = String::new();
    let read = child
        .stdout
        .take()
        .map(|out| BufReader::new(out).read_line(&mut line));
    let server = Reaped(child);
    let port = match (read, line.trim().parse::<u16>()) {
        (Some(Ok(_)), Ok(p)) if p != 0 => p,
        other => panic!("the SMTP server did not report its port: {other:?} {line:?}"),
    };
    (server, port)
}

/// An SMTP server on 127.0.0.1 delivering every message into the Maildir `maildir`.
pub fn maildir_server(py: &Path, maildir: &Path) -> (Reaped, u16) {
    let mut cmd = Command::new(py);
    cmd.args(["-c", MAILDIR_SERVER]).arg(maildir);
    start(cmd)
}

/// The SMTP server `script` (a path in the repository) run with `args`.
pub fn script_server(py: &Path, script: &str, args: &[&std::ffi::OsStr]) -> (Reaped, u16) {
    let mut cmd = Command::new(py);
    cmd.arg(super::repo(script)).args(args);
    start(cmd)
}

/// (To, Subject) of every message in the Maildir, sorted.
pub fn delivered(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).expect("read message");
                let head = text.replace("\r\n", "\n");
                let head = head.split("\n\n").next().unwrap_or("").replace("\n ", " ");
                let get = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                out.push((get("To"), get("Subject")));
            }
        }
    }
    out.sort();
    out
}
