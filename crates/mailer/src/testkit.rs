//! An in-process SMTP server for tests, with fault injection: it answers 4xx/5xx at MAIL, RCPT
//! or after DATA, and drops the connection in the middle of DATA or after the final dot, per
//! recipient or for the next transactions. Accepted messages are kept in memory with their
//! envelope. Loopback only; no TLS (the mailer allows plain SMTP to loopback only).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the server does to one transaction instead of accepting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer MAIL FROM with this code and text (421 also closes the connection).
    AtMail(u16, String),
    /// Answer RCPT TO with this code and text.
    AtRcpt(u16, String),
    /// Read the whole message, then answer this instead of 250 (the message is not kept).
    AtEndOfData(u16, String),
    /// Close the connection after `n` bytes of message data (mid-DATA; not kept).
    DropMidData(usize),
    /// Read the whole message and close without answering (not kept).
    DropAfterData,
    /// Keep the message, then close without answering: the client cannot know it was
    /// delivered (the unavoidable duplicate window of SMTP).
    DropAfterAccept,
}

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as received (dot-unstuffed, CRLF line ends).
    pub data: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The first header `name` (unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let mut out: Option<String> = None;
        let mut collecting = false;
        for line in head.split("\r\n") {
            if collecting {
                if line.starts_with(' ') || line.starts_with('\t') {
                    if let Some(o) = out.as_mut() {
                        o.push(' ');
                        o.push_str(line.trim());
                    }
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    out = Some(v.trim().to_string());
                    collecting = true;
                }
            }
        }
        out
    }
}

#[derive(Debug, Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    per_rcpt: Mutex<HashMap<String, VecDeque<Fault>>>,
    next: Mutex<VecDeque<Fault>>,
    connections: AtomicU64,
    transactions: AtomicU64,
}

/// A running test server; stops when dropped.
#[derive(Debug)]
pub struct SmtpServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::default());
        let i2 = inner.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                i2.connections.fetch_add(1, Ordering::Relaxed);
                let i3 = i2.clone();
                tokio::spawn(async move {
                    let _ = session(sock, i3).await;
                });
            }
        });
        Ok(Self { addr, inner, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.addr.port())
    }

    /// Faults for the next transactions whose RCPT is `rcpt`, in order; then accept.
    pub fn script(&self, rcpt: &str, faults: Vec<Fault>) {
        if let Ok(mut m) = self.inner.per_rcpt.lock() {
            m.insert(rcpt.to_ascii_lowercase(), faults.into());
        }
    }

    /// Faults for the next transactions whatever their recipient, in order.
    pub fn fail_next(&self, faults: Vec<Fault>) {
        if let Ok(mut m) = self.inner.next.lock() {
            m.extend(faults);
        }
    }

    /// Accepted messages, in order of acceptance.
    pub fn received(&self) -> Vec<Received> {
        self.inner
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Accepted messages per recipient address (lowercase).
    pub fn deliveries(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for r in self.received() {
            for to in r.rcpt_to {
                *out.entry(to.to_ascii_lowercase()).or_default() += 1;
            }
        }
        out
    }

    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// Transactions that reached MAIL FROM.
    pub fn transactions(&self) -> u64 {
        self.inner.transactions.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` messages were accepted, or `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            if self.received().len() >= n {
                return true;
            }
            if tokio::time::Instant::now() > end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn addr_of(arg: &str) -> String {
    let a = arg.trim();
    let a = a.split_once(':').map(|(_, v)| v).unwrap_or(a).trim();
    let a = a.split_whitespace().next().unwrap_or("");
    a.trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

async fn session(sock: TcpStream, inner: Arc<Inner>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 testkit ESMTP ready\r\n").await?;
    let mut from = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    let mut fault: Option<Fault> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let cmd = String::from_utf8_lossy(&line).trim_end().to_string();
        let verb = cmd
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let arg = cmd.get(verb.len()..).unwrap_or("").trim().to_string();
        match verb.as_str() {
            "EHLO" => {
                w.write_all(b"250-testkit\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800\r\n")
                    .await?
            }
            "HELO" => w.write_all(b"250 testkit\r\n").await?,
            "NOOP" => w.write_all(b"250 2.0.0 ok\r\n").await?,
            "RSET" => {
                from.clear();
                rcpts.clear();
                fault = None;
                w.write_all(b"250 2.0.0 ok\r\n").await?
            }
            "QUIT" => {
                w.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            "MAIL" => {
                inner.transactions.fetch_add(1, Ordering::Relaxed);
                from = addr_of(&arg);
                rcpts.clear();
                fault = inner.next.lock().ok().and_then(|mut n| n.pop_front());
                if let Some(Fault::AtMail(code, text)) = &fault {
                    w.write_all(format!("{code} {text}\r\n").as_bytes()).await?;
                    let close = *code == 421;
                    fault = None;
                    if close {
                        return Ok(());
                    }
                    continue;
                }
                w.write_all(b"250 2.1.0 ok\r\n").await?
            }
            "RCPT" => {
                let to = addr_of(&arg);
                if fault.is_none() {
                    fault = inner
                        .per_rcpt
                        .lock()
                        .ok()
                        .and_then(|mut m| m.get_mut(&to).and_then(VecDeque::pop_front));
                }
                if let Some(Fault::AtRcpt(code, text)) = &fault {
                    w.write_all(format!("{code} {text}\r\n").as_bytes()).await?;
                    let close = *code == 421;
                    fault = None;
                    if close {
                        return Ok(());
                    }
                    continue;
                }
                rcpts.push(to);
                w.write_all(b"250 2.1.5 ok\r\n").await?
            }
            "DATA" => {
                if rcpts.is_empty() {
                    w.write_all(b"503 5.5.1 no valid recipients\r\n").await?;
                    continue;
                }
                w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = Vec::new();
                let mut read = 0usize;
                loop {
                    line.clear();
                    let n = r.read_until(b'\n', &mut line).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    read += n;
                    if let Some(Fault::DropMidData(limit)) = fault {
                        if read >= limit {
                            return Ok(());
                        }
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    let l = if line.starts_with(b"..") {
                        &line[1..]
                    } else {
                        &line[..]
                    };
                    data.extend_from_slice(l);
                }
                let msg = Received {
                    mail_from: std::mem::take(&mut from),
                    rcpt_to: std::mem::take(&mut rcpts),
                    data,
                };
                match fault.take() {
                    Some(Fault::AtEndOfData(code, text)) => {
                        w.write_all(format!("{code} {text}\r\n").as_bytes()).await?;
                        if code == 421 {
                            return Ok(());
                        }
                    }
                    Some(Fault::DropAfterData) => return Ok(()),
                    Some(Fault::DropAfterAccept) => {
                        if let Ok(mut rec) = inner.received.lock() {
                            rec.push(msg);
                        }
                        return Ok(());
                    }
                    _ => {
                        let n = inner
                            .received
                            .lock()
                            .map(|mut rec| {
                                rec.push(msg);
                                rec.len()
                            })
                            .unwrap_or(0);
                        w.write_all(format!("250 2.0.0 Ok: queued as T{n}\r\n").as_bytes())
                            .await?
                    }
                }
            }
            _ => {
                w.write_all(b"502 5.5.2 command not implemented\r\n")
                    .await?
            }
        }
    }
}
