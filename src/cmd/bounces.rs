//! `retain bounces ingest PATH|-`: reads bounce (DSN) and complaint (ARF) reports from a file of
//! one message, a maildir, a directory of `.eml` files or standard input (an MTA pipe), hands
//! each to the mailer's [`Ingest`], prints what each file was, which send it matched and what was
//! done, then the guardrail's verdict on the campaigns the reports touched.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use retain_core::tracking::load_secret;
use retain_mailer::{GuardrailCheck, GuardrailLimits, Ingest, IngestSettings, ItemResult};
use serde::Serialize;

use super::{exit, fail, Context};
use crate::output::{print_json, Format, Table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read DSN bounces and ARF complaints: suppress hard bounces and complaints, count soft
    /// bounces, pause campaigns over the guardrail limits.
    Ingest {
        /// A file of one message, a maildir (new/ and cur/), a directory of .eml files, or - for
        /// standard input (an MTA pipe).
        path: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Serialize)]
struct FileResult {
    file: String,
    /// dsn | arf | other | malformed | unreadable
    kind: String,
    report_id: Option<String>,
    note: Option<String>,
    items: Vec<ItemResult>,
}

#[derive(Serialize)]
struct Summary {
    files: usize,
    reports: usize,
    matched: usize,
    unmatched: usize,
    suppressed: usize,
    malformed: usize,
    other: usize,
}

#[derive(Serialize)]
struct Output {
    files: Vec<FileResult>,
    summary: Summary,
    campaigns: Vec<GuardrailCheck>,
}

/// The messages under `path`, sorted: the file itself, a maildir's new/ and cur/, or a
/// directory's `.eml` files.
fn messages(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| fail(exit::BAD_INPUT, format!("{}: {e}", path.display())))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let list = |dir: &Path, only_eml: bool| -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
            let p = e.with_context(|| format!("{}", dir.display()))?.path();
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            let eml = p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.eq_ignore_ascii_case("eml"));
            if p.is_file() && !hidden && (eml || !only_eml) {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    };
    let (new, cur) = (path.join("new"), path.join("cur"));
    if new.is_dir() && cur.is_dir() {
        let mut all = list(&new, false)?;
        all.extend(list(&cur, false)?);
        return Ok(all);
    }
    let files = list(path, true)?;
    if files.is_empty() {
        return Err(fail(
            exit::BAD_INPUT,
            format!(
                "{}: no messages (expected .eml files, or a maildir with new/ and cur/)",
                path.display()
            ),
        ));
    }
    Ok(files)
}

pub async fn run(ctx: &Context, cmd: Command) -> Result<()> {
    let Command::Ingest { path, format } = cmd;
    if !matches!(format, Format::Table | Format::Json) {
        return Err(fail(exit::BAD_INPUT, "--format: table or json"));
    }
    let secret = load_secret(&ctx.dir).map_err(|e| fail(exit::PRECONDITION, e.to_string()))?;
    let s = &ctx.config.sending;
    let min_delivered = i64::from(s.guardrail_min_delivered);
    let mut ingest = Ingest::new(
        &ctx.store,
        IngestSettings {
            secret,
            soft_bounce_limit: s.soft_bounce_limit,
            soft_bounce_days: s.soft_bounce_days,
            limits: GuardrailLimits {
                complaint_rate: s.complaint_rate_limit,
                hard_bounce_rate: s.hard_bounce_rate_limit,
                min_delivered: i64::from(s.guardrail_min_delivered),
            },
        },
    );
    let inputs: Vec<(String, std::io::Result<Vec<u8>>)> = if path == "-" {
        let mut buf = Vec::new();
        let r = std::io::stdin().lock().read_to_end(&mut buf).map(|_| buf);
        vec![("-".to_string(), r)]
    } else {
        messages(Path::new(&path))?
            .into_iter()
            .map(|p| {
                let r = std::fs::read(&p);
                (p.display().to_string(), r)
            })
            .collect()
    };
    let mut files = Vec::with_capacity(inputs.len());
    for (file, bytes) in inputs {
        let raw = match bytes {
            Ok(b) => b,
            Err(e) => {
                files.push(FileResult {
                    file,
                    kind: "unreadable".into(),
                    report_id: None,
                    note: Some(e.to_string()),
                    items: Vec::new(),
                });
                continue;
            }
        };
        let r = ingest
            .message(&raw)
            .await
            .with_context(|| format!("{file}: recording its reports"))?;
        files.push(FileResult {
            file,
            kind: r.kind,
            report_id: r.report_id,
            note: r.note,
            items: r.items,
        });
    }
    let campaigns = ingest.finish().await.context("checking the guardrails")?;
    let items = || files.iter().flat_map(|f| &f.items);
    let acted = |i: &&ItemResult| i.outcome != "ignored";
    let summary = Summary {
        files: files.len(),
        reports: files
            .iter()
            .filter(|f| f.kind == "dsn" || f.kind == "arf")
            .count(),
        matched: items()
            .filter(acted)
            .filter(|i| i.send_id.is_some())
            .count(),
        unmatched: items()
            .filter(acted)
            .filter(|i| i.send_id.is_none())
            .count(),
        suppressed: items().filter(|i| i.suppressed).count(),
        malformed: files
            .iter()
            .filter(|f| f.kind == "malformed" || f.kind == "unreadable")
            .count(),
        other: files.iter().filter(|f| f.kind == "other").count(),
    };
    let out = Output {
        files,
        summary,
        campaigns,
    };
    if format == Format::Json {
        return print_json(&out);
    }
    let mut t = Table::new([
        "file",
        "report",
        "recipient",
        "outcome",
        "status",
        "send",
        "campaign",
        "matched by",
        "done",
    ]);
    for f in &out.files {
        if f.items.is_empty() {
            t.row([
                f.file.clone(),
                f.kind.clone(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                f.note.clone().unwrap_or_default(),
            ]);
        }
        for i in &f.items {
            t.row([
                f.file.clone(),
                f.kind.clone(),
                i.recipient.clone().unwrap_or_default(),
                i.outcome.clone(),
                i.status.clone(),
                i.send_id.map(|s| s.to_string()).unwrap_or_default(),
                i.campaign_id.clone().unwrap_or_default(),
                i.matched_by
                    .map(|m| match m {
                        retain_mailer::MatchedBy::ReturnPath => "return path",
                        retain_mailer::MatchedBy::MessageId => "message-id",
                        retain_mailer::MatchedBy::RecipientCampaign => "recipient+campaign",
                    })
                    .unwrap_or("-")
                    .to_string(),
                i.action.clone(),
            ]);
        }
    }
    print!("{}", t.render());
    let s = &out.summary;
    println!(
        "{} file(s): {} report(s), {} matched, {} unmatched, {} address(es) suppressed, {} malformed, {} not a report",
        s.files, s.reports, s.matched, s.unmatched, s.suppressed, s.malformed, s.other
    );
    for c in &out.campaigns {
        let state = match (&c.breach, c.paused_now) {
            (Some(why), true) => format!("PAUSED: {why}"),
            (Some(why), false) => {
                format!("over the limit ({why}); already paused or resumed by hand")
            }
            (None, _) if c.counts.delivered < min_delivered => {
                format!("not judged below {min_delivered} delivered")
            }
            (None, _) => "within limits".to_string(),
        };
        println!(
            "campaign {}: {} delivered, complaints {:.2}%, hard bounces {:.2}%: {state}",
            c.campaign_id,
            c.counts.delivered,
            c.complaint_rate * 100.0,
            c.hard_bounce_rate * 100.0
        );
    }
    Ok(())
}
