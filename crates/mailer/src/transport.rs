//! Where messages go: SMTP (lettre, one connection per worker, STARTTLS or implicit TLS
//! required unless the server is on loopback), `.eml` files in the workspace outbox, or an
//! in-memory stub for tests. Failures are classified for the send engine: transient (4xx,
//! connection trouble: retry with backoff), permanent (5xx: give up; 5.1.x is a hard bounce) or
//! fatal (TLS, authentication, configuration: stop the whole send).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use crate::message::OutgoingMessage;

/// A message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The server's answer (e.g. `250 2.0.0 Ok: queued as X`) or where the file went.
    pub response: String,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Worth retrying: a 4xx answer, or the connection failed or dropped.
    #[error("{}{message}", code.map(|c| format!("{c} ")).unwrap_or_default())]
    Transient { code: Option<u16>, message: String },
    /// The server refused the message for good (5xx).
    #[error("{code} {message}")]
    Permanent { code: u16, message: String },
    /// Nothing can be sent with this transport (TLS, authentication, configuration).
    #[error("{0}")]
    Fatal(String),
    /// The server could not be reached (connection refused, timeout, 4xx greeting): retried
    /// like a transient failure; a message that never got through stops the run.
    #[error("{0}")]
    Unavailable(String),
}

impl TransportError {
    /// The RFC 3463 enhanced status code at the start of the message (e.g. `(5, 1, 1)`).
    pub fn enhanced_code(&self) -> Option<(u8, u16, u16)> {
        let msg = match self {
            Self::Transient { message, .. } | Self::Permanent { message, .. } => message,
            Self::Fatal(_) | Self::Unavailable(_) => return None,
        };
        let word = msg.split_whitespace().next()?;
        let mut it = word.split('.');
        let class: u8 = it.next()?.parse().ok()?;
        let subject: u16 = it.next()?.parse().ok()?;
        let detail: u16 = it.next()?.parse().ok()?;
        if it.next().is_some() || !(2..=5).contains(&class) {
            return None;
        }
        Some((class, subject, detail))
    }

    /// A permanent failure about the address itself (5.1.x): the address is to be suppressed.
    pub fn is_hard_bounce(&self) -> bool {
        matches!(self, Self::Permanent { .. }) && matches!(self.enhanced_code(), Some((5, 1, _)))
    }

    /// The server asks us to slow down (421, 451).
    pub fn is_throttle(&self) -> bool {
        matches!(
            self,
            Self::Transient {
                code: Some(421 | 451),
                ..
            }
        )
    }
}

/// Something that delivers messages. `worker` is the sending worker's index (< its
/// concurrency), so transports can keep one connection per worker.
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        worker: usize,
        msg: &OutgoingMessage,
    ) -> impl std::future::Future<Output = Result<Delivery, TransportError>> + Send;
    /// Closes connections (QUIT).
    fn close(&self) -> impl std::future::Future<Output = ()> + Send;
    /// For people: where messages go.
    fn describe(&self) -> String;
}

// ---------------------------------------------------------------------------------------------
// SMTP

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No TLS: only to a server on loopback.
    Plain,
    /// STARTTLS, required (the send stops if the server does not offer it).
    StartTls,
    /// TLS from the first byte (smtps, port 465).
    Implicit,
}

/// Parsed `smtp.url` plus credentials.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    password: Option<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// True for `localhost` and loopback addresses.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl SmtpSettings {
    /// Parses lettre's URL form: `smtp://host[:port][?tls=required|opportunistic]`,
    /// `smtps://host[:port]`. A remote `smtp://` server gets STARTTLS required; plain text is
    /// only allowed to loopback. Passwords in the URL are refused (use RETAIN_SMTP_PASSWORD).
    pub fn from_url(
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Self, TransportError> {
        let fatal = |m: String| TransportError::Fatal(m);
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            fatal("smtp.url: expected smtp://host:port or smtps://host:port".into())
        })?;
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority = authority.split('/').next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if userinfo.is_some_and(|u| u.contains(':')) {
            return Err(fatal(
                "smtp.url must not contain a password: set RETAIN_SMTP_PASSWORD instead".into(),
            ));
        }
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h
                .split_once(']')
                .ok_or_else(|| fatal("smtp.url: unclosed [ in host".into()))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(fatal("smtp.url: no host".into()));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| fatal(format!("smtp.url: bad port '{p}'")))
            })
            .transpose()?;
        let tls = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("tls="));
        let loopback = is_loopback(&host);
        let security = match (scheme, tls) {
            ("smtps", _) => Security::Implicit,
            ("smtp", Some("required")) => Security::StartTls,
            ("smtp", None) if loopback => Security::Plain,
            ("smtp", None) => Security::StartTls,
            ("smtp", Some("opportunistic" | "none")) if loopback => Security::Plain,
            ("smtp", Some(t)) => {
                return Err(fatal(format!(
                    "smtp.url: tls={t} is not allowed for {host}: mail to a remote server needs STARTTLS (tls=required) or smtps://"
                )))
            }
            (s, _) => return Err(fatal(format!("smtp.url: unknown scheme '{s}' (smtp or smtps)"))),
        };
        let port = port.unwrap_or(match security {
            Security::Implicit => 465,
            Security::StartTls => 587,
            Security::Plain => 25,
        });
        let username = username
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .or_else(|| userinfo.filter(|u| !u.is_empty()).map(str::to_string));
        Ok(Self {
            host,
            port,
            security,
            username,
            password: password.map(str::to_string),
            timeout: Duration::from_secs(30),
        })
    }
}

/// SMTP through lettre, one persistent connection per worker.
pub struct SmtpTransport {
    settings: SmtpSettings,
    hello: ClientId,
    slots: Vec<tokio::sync::Mutex<Option<AsyncSmtpConnection>>>,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("settings", &self.settings)
            .field("connections", &self.slots.len())
            .finish()
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> TransportError {
    use std::error::Error as _;
    let message = e
        .source()
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string());
    let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
    if e.is_permanent() {
        TransportError::Permanent {
            code: code.unwrap_or(550),
            message,
        }
    } else if e.is_transient() {
        TransportError::Transient { code, message }
    } else if e.is_client() {
        TransportError::Permanent {
            code: 0,
            message: format!("client: {message}"),
        }
    } else {
        TransportError::Transient {
            code: None,
            message: e.to_string(),
        }
    }
}

impl SmtpTransport {
    /// A transport with `concurrency` connection slots (connections open on first use).
    pub fn new(settings: SmtpSettings, concurrency: usize) -> Self {
        Self {
            settings,
            hello: ClientId::default(),
            slots: (0..concurrency.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, TransportError> {
        let s = &self.settings;
        let tls = || {
            TlsParameters::new(s.host.clone())
                .map_err(|e| TransportError::Fatal(format!("TLS setup for {}: {e}", s.host)))
        };
        let connected = match s.security {
            Security::Implicit => {
                AsyncSmtpConnection::connect_tokio1(
                    (s.host.as_str(), s.port),
                    Some(s.timeout),
                    &self.hello,
                    Some(tls()?),
                    None,
                )
                .await
            }
            _ => {
                // Our own socket, to turn Nagle off: lettre writes the message and its final
                // dot separately, and Nagle plus delayed ACKs would stall every message ~40 ms.
                let tcp = tokio::time::timeout(
                    s.timeout,
                    tokio::net::TcpStream::connect((s.host.as_str(), s.port)),
                )
                .await
                .map_err(|_| {
                    TransportError::Unavailable(format!(
                        "cannot connect to {}:{}: timed out",
                        s.host, s.port
                    ))
                })?
                .map_err(|e| {
                    TransportError::Unavailable(format!(
                        "cannot connect to {}:{}: {e}",
                        s.host, s.port
                    ))
                })?;
                let _ = tcp.set_nodelay(true);
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await
            }
        };
        let mut conn = connected.map_err(|e| {
            if e.is_tls() {
                TransportError::Fatal(format!("TLS with {}:{}: {e}", s.host, s.port))
            } else if e.is_permanent() {
                TransportError::Fatal(format!("{}:{} refused us: {e}", s.host, s.port))
            } else {
                TransportError::Unavailable(format!(
                    "cannot connect to {}:{}: {}",
                    s.host,
                    s.port,
                    classify(&e)
                ))
            }
        })?;
        if s.security == Security::StartTls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(TransportError::Fatal(format!(
                    "{}:{} does not offer STARTTLS, which is required for a remote server",
                    s.host, s.port
                )));
            }
            conn.starttls(tls()?, &self.hello).await.map_err(|e| {
                TransportError::Fatal(format!("STARTTLS with {}:{}: {e}", s.host, s.port))
            })?;
        }
        if let Some(user) = &s.username {
            let pass = s.password.clone().ok_or_else(|| {
                TransportError::Fatal(format!(
                    "smtp.username is set ({user}) but RETAIN_SMTP_PASSWORD is not"
                ))
            })?;
            let creds = Credentials::new(user.clone(), pass);
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await
                .map_err(|e| {
                    TransportError::Fatal(format!(
                        "authentication as {user} at {} failed: {}",
                        s.host,
                        classify(&e)
                    ))
                })?;
        }
        Ok(conn)
    }
}

impl Transport for SmtpTransport {
    async fn send(&self, worker: usize, msg: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let slot = &self.slots[worker % self.slots.len()];
        let mut guard = slot.lock().await;
        if guard.as_ref().is_none_or(|c| c.has_broken()) {
            *guard = Some(self.connect().await?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(TransportError::Transient {
                code: None,
                message: "no connection".into(),
            });
        };
        match conn.send(&msg.envelope, &msg.raw).await {
            Ok(r) => Ok(Delivery {
                response: format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" ")),
            }),
            Err(e) => {
                if conn.has_broken() {
                    *guard = None;
                }
                Err(classify(&e))
            }
        }
    }

    async fn close(&self) {
        for slot in &self.slots {
            if let Some(mut c) = slot.lock().await.take() {
                let _ = c.quit().await;
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "smtp {}:{} ({})",
            self.settings.host,
            self.settings.port,
            match self.settings.security {
                Security::Plain => "plain, loopback",
                Security::StartTls => "STARTTLS",
                Security::Implicit => "TLS",
            }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// Writes each message to `DIR/<send id>.eml`, whole or not at all. On Linux the message is
/// written to an unnamed file (`O_TMPFILE`) that is linked into the directory once complete: one
/// directory entry per message. Elsewhere, on a filesystem without unnamed files, or when the
/// name is already taken (a message sent again after an unconfirmed attempt), it is written to
/// a temp file that is renamed into place.
#[derive(Debug, Clone)]
pub struct FileTransport {
    dir: PathBuf,
    #[cfg(target_os = "linux")]
    unnamed: Option<std::sync::Arc<unnamed::Dir>>,
}

impl FileTransport {
    pub fn new(dir: &Path) -> Result<Self, TransportError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| TransportError::Fatal(format!("creating {}: {e}", dir.display())))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            #[cfg(target_os = "linux")]
            unnamed: unnamed::Dir::open(dir).map(std::sync::Arc::new),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` as `name` in the directory, whole or not at all.
    fn write_whole(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(dir) = &self.unnamed {
            if dir.write(name, bytes)? {
                return Ok(());
            }
        }
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.dir.join(name))
    }
}

/// Unnamed files linked into a directory (Linux).
#[cfg(target_os = "linux")]
mod unnamed {
    use std::io::Write;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::fs::{linkat, openat, AtFlags, Mode, OFlags, CWD};
    use rustix::io::Errno;

    #[derive(Debug)]
    pub(super) struct Dir {
        fd: OwnedFd,
        /// Cleared when the filesystem or the system cannot do it: the rename path from then on.
        works: AtomicBool,
    }

    impl Dir {
        pub(super) fn open(dir: &Path) -> Option<Self> {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd = openat(CWD, dir, flags, Mode::empty()).ok()?;
            Some(Self {
                fd,
                works: AtomicBool::new(true),
            })
        }

        /// `Ok(true)`: `name` now holds `bytes`; `Ok(false)`: not done, write it another way
        /// (unnamed files unsupported, or `name` exists); `Err`: the write itself failed.
        pub(super) fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<bool> {
            if !self.works.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
            let fd = match openat(&self.fd, ".", flags, Mode::from_raw_mode(0o666)) {
                Ok(fd) => fd,
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                    self.works.store(false, Ordering::Relaxed);
                    return Ok(false);
                }
                Err(_) => return Ok(false),
            };
            let mut file = std::fs::File::from(fd);
            file.write_all(bytes)?;
            // Linking an open file by descriptor needs either CAP_DAC_READ_SEARCH
            // (AT_EMPTY_PATH) or /proc: the latter.
            let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
            match linkat(CWD, by_fd.as_str(), &self.fd, name, AtFlags::SYMLINK_FOLLOW) {
                Ok(()) => Ok(true),
                Err(Errno::EXIST) => Ok(false),
                Err(_) => {
                    self.works.store(false, Ordering::Relaxed);
                    Ok(false)
                }
            }
        }
    }
}

impl Transport for FileTransport {
    async fn send(
        &self,
        _worker: usize,
        msg: &OutgoingMessage,
    ) -> Result<Delivery, TransportError> {
        let name = format!("{}.eml", msg.send_id);
        // Written in place, not through the blocking pool: a few KiB into the page cache cost
        // less than the thread hand-offs of `tokio::fs`.
        self.write_whole(&name, &msg.raw).map_err(|e| {
            TransportError::Fatal(format!("writing {}: {e}", self.dir.join(&name).display()))
        })?;
        Ok(Delivery {
            response: format!("written {}", self.dir.join(&name).display()),
        })
    }

    async fn close(&self) {}

    fn describe(&self) -> String {
        format!("files in {}", self.dir.display())
    }
}

// ---------------------------------------------------------------------------------------------
// Stub

/// A scripted answer of the [`StubTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StubReply {
    Accept,
    Fail(TransportError),
}

/// Records messages in memory; answers per recipient follow a script (default: accept).
#[derive(Debug, Default)]
pub struct StubTransport {
    sent: Mutex<Vec<OutgoingMessage>>,
    attempts: Mutex<HashMap<String, usize>>,
    script: Mutex<HashMap<String, VecDeque<StubReply>>>,
}

impl StubTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next answers for `rcpt`, in order; after them, accept.
    pub fn script(&self, rcpt: &str, replies: Vec<StubReply>) {
        if let Ok(mut s) = self.script.lock() {
            s.insert(rcpt.to_ascii_lowercase(), replies.into());
        }
    }

    /// Accepted messages, in order.
    pub fn sent(&self) -> Vec<OutgoingMessage> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Attempts per recipient (accepted or not).
    pub fn attempts(&self, rcpt: &str) -> usize {
        self.attempts
            .lock()
            .ok()
            .and_then(|a| a.get(&rcpt.to_ascii_lowercase()).copied())
            .unwrap_or(0)
    }
}

impl Transport for StubTransport {
    async fn send(
        &self,
        _worker: usize,
        msg: &OutgoingMessage,
    ) -> Result<Delivery, TransportError> {
        let rcpt = msg.to.to_ascii_lowercase();
        if let Ok(mut a) = self.attempts.lock() {
            *a.entry(rcpt.clone()).or_default() += 1;
        }
        let reply = self
            .script
            .lock()
            .ok()
            .and_then(|mut s| s.get_mut(&rcpt).and_then(VecDeque::pop_front))
            .unwrap_or(StubReply::Accept);
        match reply {
            StubReply::Accept => {
                if let Ok(mut s) = self.sent.lock() {
                    s.push(msg.clone());
                }
                Ok(Delivery {
                    response: "250 stub".into(),
                })
            }
            StubReply::Fail(e) => Err(e),
        }
    }

    async fn close(&self) {}

    fn describe(&self) -> String {
        "stub".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        let s = SmtpSettings::from_url("smtp://127.0.0.1:2525", None, None).expect("ok");
        assert_eq!(
            (s.host.as_str(), s.port, s.security),
            ("127.0.0.1", 2525, Security::Plain)
        );
        let s =
            SmtpSettings::from_url("smtp://mail.example.com", Some("u"), Some("p")).expect("ok");
        assert_eq!((s.port, s.security), (587, Security::StartTls));
        assert!(!format!("{s:?}").contains("\"p\""), "password not printed");
        let s = SmtpSettings::from_url("smtps://mail.example.com", None, None).expect("ok");
        assert_eq!((s.port, s.security), (465, Security::Implicit));
        let s = SmtpSettings::from_url("smtp://[::1]:25", None, None).expect("ok");
        assert_eq!((s.host.as_str(), s.security), ("::1", Security::Plain));
        let s = SmtpSettings::from_url("smtp://localhost:25?tls=required", None, None).expect("ok");
        assert_eq!(s.security, Security::StartTls);
        let e = SmtpSettings::from_url("smtp://mail.example.com?tls=opportunistic", None, None)
            .expect_err("remote without TLS");
        assert!(e.to_string().contains("STARTTLS"));
        let e = SmtpSettings::from_url("smtp://user:hunter2@mail.example.com", None, None)
            .expect_err("password");
        assert!(!e.to_string().contains("hunter2"));
        assert!(SmtpSettings::from_url("http://x", None, None).is_err());
        assert!(SmtpSettings::from_url("smtp://x:notaport", None, None).is_err());
    }

    /// Every file in `dir`, hidden ones (temporary files) included.
    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A message is written whole under its send id, a second write of the same send replaces
    /// it, and nothing else is left in the outbox — through the unnamed-file path and through
    /// the temp-file-and-rename path alike.
    #[tokio::test]
    async fn outbox_files_are_written_whole_and_replaced() {
        let tmp = tempfile::tempdir().expect("tmp");
        let message = |send_id: i64, body: &str| OutgoingMessage {
            send_id,
            to: "a@example.com".into(),
            message_id: format!("<{send_id}@example.com>"),
            envelope: lettre::address::Envelope::new(
                Some("from@example.com".parse().expect("from")),
                vec!["a@example.com".parse().expect("to")],
            )
            .expect("envelope"),
            raw: body.as_bytes().to_vec(),
        };
        let linked = FileTransport::new(&tmp.path().join("linked")).expect("outbox");
        #[cfg(target_os = "linux")]
        assert!(linked.unnamed.is_some(), "the outbox directory opens");
        #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
        let mut renamed = FileTransport::new(&tmp.path().join("renamed")).expect("outbox");
        #[cfg(target_os = "linux")]
        {
            renamed.unnamed = None;
        }
        for t in [&linked, &renamed] {
            t.send(0, &message(7, "first\r\n")).await.expect("written");
            t.send(1, &message(8, "other\r\n")).await.expect("written");
            t.send(0, &message(7, "again\r\n")).await.expect("replaced");
            assert_eq!(files(t.dir()), ["7.eml", "8.eml"]);
            let read = |n: &str| std::fs::read_to_string(t.dir().join(n)).expect("read");
            assert_eq!(read("7.eml"), "again\r\n");
            assert_eq!(read("8.eml"), "other\r\n");
        }
    }

    #[test]
    fn classification() {
        let e = TransportError::Permanent {
            code: 550,
            message: "5.1.1 <x@y>: Recipient address rejected".into(),
        };
        assert_eq!(e.enhanced_code(), Some((5, 1, 1)));
        assert!(e.is_hard_bounce());
        let e = TransportError::Permanent {
            code: 554,
            message: "5.7.1 spam".into(),
        };
        assert!(!e.is_hard_bounce());
        let e = TransportError::Permanent {
            code: 550,
            message: "no such user".into(),
        };
        assert!(!e.is_hard_bounce());
        assert!(TransportError::Transient {
            code: Some(451),
            message: "4.7.1 slow down".into()
        }
        .is_throttle());
        assert!(!TransportError::Transient {
            code: None,
            message: "reset".into()
        }
        .is_throttle());
    }
}
