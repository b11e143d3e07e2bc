//! SPF (RFC 7208) and DMARC (RFC 7489) for `retain doctor`: the records are parsed and judged
//! by pure functions over TXT strings ([`judge_spf`], [`parse_dmarc`], [`judge_dmarc`]); the DNS
//! is behind [`TxtResolver`], so the doctor's logic is tested without a network.
//! [`SystemResolver`] is the real one (hickory, the system's resolver configuration, a short
//! timeout). A lookup that cannot be made (offline, timeout) is "not looked up", a warning.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use crate::doctor::{Check, Status};

/// Why a TXT lookup gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The name exists without TXT records.
    NotFound,
    /// The name does not exist (NXDOMAIN) — or, behind a resolver that answers so for
    /// everything, the network is closed: the checks tell the two apart by asking for the
    /// domain itself.
    NoSuchName,
    /// The lookup could not be made (no network, timeout, server failure).
    Unavailable(String),
}

/// TXT records of a name, each record's strings joined.
pub trait TxtResolver: Sync {
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, LookupError>> + Send;
}

/// The system's resolver (`/etc/resolv.conf`), each query limited to `timeout`, one attempt.
#[derive(Debug, Clone, Copy)]
pub struct SystemResolver {
    pub timeout: Duration,
}

impl TxtResolver for SystemResolver {
    async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        use hickory_resolver::error::ResolveErrorKind;
        let (config, mut opts) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| LookupError::Unavailable(format!("no resolver configuration: {e}")))?;
        opts.timeout = self.timeout;
        opts.attempts = 1;
        let resolver = hickory_resolver::TokioAsyncResolver::tokio(config, opts);
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match tokio::time::timeout(self.timeout * 3, resolver.txt_lookup(fqdn)).await {
            Err(_) => Err(LookupError::Unavailable("timed out".into())),
            Ok(Ok(l)) => Ok(l
                .iter()
                .map(|t| {
                    t.txt_data()
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect::<String>()
                })
                .collect()),
            Ok(Err(e)) => match e.kind() {
                ResolveErrorKind::NoRecordsFound { response_code, .. }
                    if *response_code == hickory_resolver::proto::op::ResponseCode::NXDomain =>
                {
                    Err(LookupError::NoSuchName)
                }
                ResolveErrorKind::NoRecordsFound { .. } => Err(LookupError::NotFound),
                _ => Err(LookupError::Unavailable(e.to_string())),
            },
        }
    }
}

/// The SPF records among a name's TXT records (`v=spf1` alone or followed by a space).
pub fn spf_records(txt: &[String]) -> Vec<&str> {
    txt.iter()
        .map(|t| t.trim())
        .filter(|t| {
            let l = t.to_ascii_lowercase();
            l == "v=spf1" || l.starts_with("v=spf1 ")
        })
        .collect()
}

/// What one SPF record says, before following its includes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfRecord {
    /// The `all` mechanism with its qualifier (`-all`, `~all`, `?all`, `+all`), if any.
    pub all: Option<String>,
    /// `redirect=` target.
    pub redirect: Option<String>,
    /// `include:` targets, in order.
    pub includes: Vec<String>,
    /// Terms that cost a DNS lookup (include, a, mx, ptr, exists, redirect).
    pub lookups: usize,
}

/// Parses one SPF record's terms.
pub fn parse_spf(record: &str) -> SpfRecord {
    let mut r = SpfRecord {
        all: None,
        redirect: None,
        includes: Vec::new(),
        lookups: 0,
    };
    for term in record.split_whitespace().skip(1) {
        let t = term.to_ascii_lowercase();
        if let Some(target) = t.strip_prefix("redirect=") {
            r.redirect = Some(target.to_string());
            r.lookups += 1;
            continue;
        }
        let body = t.trim_start_matches(['+', '-', '~', '?']);
        let name = body.split([':', '/']).next().unwrap_or_default();
        match name {
            "all" => {
                let q = if t.starts_with(['-', '~', '?', '+']) {
                    &t[..1]
                } else {
                    "+"
                };
                r.all = Some(format!("{q}all"));
            }
            "include" => {
                r.lookups += 1;
                if let Some((_, target)) = body.split_once(':') {
                    r.includes.push(target.to_string());
                }
            }
            "a" | "mx" | "ptr" | "exists" => r.lookups += 1,
            _ => {}
        }
    }
    r
}

/// The SPF check of the envelope domain: one record, not `+all`, ending in `~all` or `-all`,
/// at most 10 DNS lookups counted through its includes and redirects (as far as they resolve).
pub async fn check_spf<R: TxtResolver>(resolver: &R, domain: &str) -> Check {
    let txt = match resolver.txt(domain).await {
        Ok(t) => t,
        Err(LookupError::NotFound) => Vec::new(),
        Err(e) => {
            let why = match e {
                LookupError::Unavailable(why) => why,
                _ => format!("{domain} does not resolve here: no DNS, or no such domain"),
            };
            return Check {
                name: "spf",
                status: Status::Warn,
                detail: format!("not looked up ({why}): {domain} needs a TXT record 'v=spf1 … -all' that includes your SMTP provider"),
            };
        }
    };
    let records = spf_records(&txt);
    let (status, detail) = match records.as_slice() {
        [] => (
            Status::Fail,
            format!("{domain} has no SPF record: publish 'v=spf1 include:<your provider> -all'"),
        ),
        [one] => {
            let top = parse_spf(one);
            let lookups = count_lookups(resolver, &top).await;
            judge_spf(domain, one, &top, lookups)
        }
        many => (
            Status::Fail,
            format!(
                "{domain} has {} SPF records: receivers treat that as an error (permerror); merge them into one",
                many.len()
            ),
        ),
    };
    Check {
        name: "spf",
        status,
        detail,
    }
}

/// Total lookups of a record and everything it includes or redirects to, each domain counted
/// once (a loop stops there); names that do not resolve add only their own lookup.
async fn count_lookups<R: TxtResolver>(resolver: &R, top: &SpfRecord) -> usize {
    let mut total = top.lookups;
    let mut seen = BTreeSet::new();
    let mut queue: Vec<String> = top
        .includes
        .iter()
        .cloned()
        .chain(top.redirect.clone())
        .collect();
    while let Some(d) = queue.pop() {
        // Past the limit the answer is known; stop asking.
        if total > 10 || !seen.insert(d.clone()) || d.contains('%') {
            continue;
        }
        if let Ok(txt) = resolver.txt(&d).await {
            if let [one] = spf_records(&txt).as_slice() {
                let r = parse_spf(one);
                total += r.lookups;
                queue.extend(r.includes);
                queue.extend(r.redirect);
            }
        }
    }
    total
}

/// Judges one parsed SPF record with its total lookup count. Pure.
pub fn judge_spf(domain: &str, record: &str, r: &SpfRecord, lookups: usize) -> (Status, String) {
    if lookups > 10 {
        return (
            Status::Fail,
            format!("{domain}: '{record}' needs {lookups} DNS lookups; receivers stop at 10 (permerror)"),
        );
    }
    match (r.all.as_deref(), &r.redirect) {
        (Some("+all"), _) => (
            Status::Fail,
            format!("{domain}: '{record}' ends in +all: anyone may send as you"),
        ),
        (Some("-all" | "~all"), _) => (
            Status::Pass,
            format!("{domain}: '{record}' ({lookups} lookups)"),
        ),
        (None, Some(target)) => (
            Status::Pass,
            format!("{domain}: '{record}' redirects to {target} ({lookups} lookups)"),
        ),
        (Some(other), _) => (
            Status::Warn,
            format!("{domain}: '{record}' ends in {other}: end it in ~all or -all"),
        ),
        (None, None) => (
            Status::Warn,
            format!("{domain}: '{record}' has no 'all': end it in ~all or -all"),
        ),
    }
}

/// A DMARC record's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dmarc {
    /// none | quarantine | reject (lowercase), `None` when missing or invalid.
    pub policy: Option<String>,
    /// DKIM alignment: strict (`adkim=s`) or relaxed (the default).
    pub strict_dkim: bool,
    /// SPF alignment: strict (`aspf=s`) or relaxed.
    pub strict_spf: bool,
    /// `pct=` (100 when absent).
    pub pct: u32,
    /// `rua=` given.
    pub reports: bool,
}

/// The DMARC records among TXT records (`v=DMARC1` first).
pub fn dmarc_records(txt: &[String]) -> Vec<&str> {
    txt.iter()
        .map(|t| t.trim())
        .filter(|t| {
            t.split(';')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("v=DMARC1"))
        })
        .collect()
}

/// Parses a DMARC record's tags. Pure.
pub fn parse_dmarc(record: &str) -> Dmarc {
    let mut d = Dmarc {
        policy: None,
        strict_dkim: false,
        strict_spf: false,
        pct: 100,
        reports: false,
    };
    for tag in record.split(';') {
        let Some((k, v)) = tag.split_once('=') else {
            continue;
        };
        let v = v.trim().to_ascii_lowercase();
        match k.trim().to_ascii_lowercase().as_str() {
            "p" if matches!(v.as_str(), "none" | "quarantine" | "reject") => d.policy = Some(v),
            "adkim" => d.strict_dkim = v == "s",
            "aspf" => d.strict_spf = v == "s",
            "pct" => d.pct = v.parse().unwrap_or(100),
            "rua" => d.reports = !v.is_empty(),
            _ => {}
        }
    }
    d
}

/// The organizational domain, approximated by the last two labels (no public suffix list).
pub fn org_domain(d: &str) -> String {
    let labels: Vec<&str> = d.trim_end_matches('.').rsplit('.').take(2).collect();
    labels.into_iter().rev().collect::<Vec<_>>().join(".")
}

fn aligns(from: &str, other: &str, strict: bool) -> bool {
    let (f, o) = (from.to_ascii_lowercase(), other.to_ascii_lowercase());
    if strict {
        f == o
    } else {
        org_domain(&f) == org_domain(&o)
    }
}

/// Judges a DMARC record for the From domain against the DKIM signing domain and the envelope
/// (return-path) domain this workspace sends with. Pure.
pub fn judge_dmarc(
    from_domain: &str,
    record: &str,
    d: &Dmarc,
    dkim_domain: Option<&str>,
    envelope_domain: &str,
) -> (Status, String) {
    let Some(p) = &d.policy else {
        return (
            Status::Fail,
            format!(
                "_dmarc.{from_domain}: '{record}' has no valid p= (none, quarantine or reject)"
            ),
        );
    };
    let dkim_ok = dkim_domain.is_some_and(|s| aligns(from_domain, s, d.strict_dkim));
    let spf_ok = aligns(from_domain, envelope_domain, d.strict_spf);
    let mode = |strict| if strict { "strict" } else { "relaxed" };
    let alignment = format!(
        "DKIM {} ({}), SPF {} ({}, envelope {envelope_domain})",
        if dkim_ok { "aligned" } else { "not aligned" },
        mode(d.strict_dkim),
        if spf_ok { "aligned" } else { "not aligned" },
        mode(d.strict_spf),
    );
    if !dkim_ok && !spf_ok {
        return (
            Status::Fail,
            format!(
                "p={p}, but neither identifier aligns with {from_domain}: {alignment}; DMARC fails"
            ),
        );
    }
    let status = if p == "none" || d.pct < 100 {
        Status::Warn
    } else {
        Status::Pass
    };
    let note = match (p.as_str(), d.pct < 100) {
        ("none", _) => {
            "; p=none only monitors: move to quarantine or reject once reports are clean"
        }
        (_, true) => "; pct<100 applies the policy to part of the mail only",
        _ => "",
    };
    (status, format!("p={p}; {alignment}{note}"))
}

fn dmarc_not_looked_up(from_domain: &str, why: &str) -> Check {
    Check {
        name: "dmarc",
        status: Status::Warn,
        detail: format!(
            "not looked up ({why}): _dmarc.{from_domain} needs a TXT record 'v=DMARC1; p=none' or stricter"
        ),
    }
}

/// The DMARC check of the From domain (falling back to its organizational domain's record).
pub async fn check_dmarc<R: TxtResolver>(
    resolver: &R,
    from_domain: &str,
    dkim_domain: Option<&str>,
    envelope_domain: &str,
) -> Check {
    let mut names = vec![format!("_dmarc.{from_domain}")];
    let org = org_domain(from_domain);
    if org != from_domain {
        names.push(format!("_dmarc.{org}"));
    }
    let mut found = None;
    for n in &names {
        match resolver.txt(n).await {
            Ok(txt) => {
                let recs: Vec<String> = dmarc_records(&txt).into_iter().map(String::from).collect();
                if !recs.is_empty() {
                    found = Some((n.clone(), recs));
                    break;
                }
            }
            Err(LookupError::NotFound | LookupError::NoSuchName) => {}
            Err(LookupError::Unavailable(why)) => return dmarc_not_looked_up(from_domain, &why),
        }
    }
    if found.is_none() {
        // No record, or no DNS at all: the From domain itself must resolve to tell.
        match resolver.txt(from_domain).await {
            Ok(_) | Err(LookupError::NotFound) => {}
            Err(LookupError::NoSuchName) => {
                return dmarc_not_looked_up(
                    from_domain,
                    &format!("{from_domain} does not resolve here: no DNS, or no such domain"),
                )
            }
            Err(LookupError::Unavailable(why)) => return dmarc_not_looked_up(from_domain, &why),
        }
    }
    let (status, detail) = match found {
        None => (
            Status::Fail,
            format!("_dmarc.{from_domain} has no DMARC record: bulk senders need at least 'v=DMARC1; p=none'"),
        ),
        Some((name, recs)) if recs.len() > 1 => (
            Status::Fail,
            format!("{name} has {} DMARC records: receivers ignore them all; keep one", recs.len()),
        ),
        Some((name, recs)) => {
            let (s, d) = judge_dmarc(
                from_domain,
                &recs[0],
                &parse_dmarc(&recs[0]),
                dkim_domain,
                envelope_domain,
            );
            (s, format!("{name}: {d}"))
        }
    };
    Check {
        name: "dmarc",
        status,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake(HashMap<String, Result<Vec<String>, LookupError>>);

    impl Fake {
        fn new(entries: &[(&str, &[&str])]) -> Self {
            Self(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), Ok(v.iter().map(|s| s.to_string()).collect())))
                    .collect(),
            )
        }
    }

    impl TxtResolver for Fake {
        async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
            self.0
                .get(name)
                .cloned()
                .unwrap_or(Err(LookupError::NoSuchName))
        }
    }

    struct Offline;
    impl TxtResolver for Offline {
        async fn txt(&self, _: &str) -> Result<Vec<String>, LookupError> {
            Err(LookupError::Unavailable("timed out".into()))
        }
    }

    #[test]
    fn spf_terms() {
        let r = parse_spf("v=spf1 ip4:192.0.2.0/24 include:_spf.esp.example a mx:mx.example ~all");
        assert_eq!(r.all.as_deref(), Some("~all"));
        assert_eq!(r.includes, vec!["_spf.esp.example".to_string()]);
        assert_eq!(r.lookups, 3);
        assert_eq!(parse_spf("v=spf1 all").all.as_deref(), Some("+all"));
        assert_eq!(parse_spf("v=spf1 ?all").all.as_deref(), Some("?all"));
        let r = parse_spf("v=spf1 redirect=_spf.example");
        assert_eq!(
            (r.redirect.as_deref(), r.lookups),
            (Some("_spf.example"), 1)
        );
        assert_eq!(
            spf_records(&[
                "v=spf1 -all".into(),
                "google-site-verification=x".into(),
                "v=spf10".into()
            ]),
            vec!["v=spf1 -all"]
        );
        let j = |rec: &str| judge_spf("d", rec, &parse_spf(rec), parse_spf(rec).lookups).0;
        assert_eq!(j("v=spf1 include:x -all"), Status::Pass);
        assert_eq!(j("v=spf1 +all"), Status::Fail);
        assert_eq!(j("v=spf1 ?all"), Status::Warn);
        assert_eq!(j("v=spf1 include:x"), Status::Warn);
        let rec = "v=spf1 -all";
        assert_eq!(judge_spf("d", rec, &parse_spf(rec), 11).0, Status::Fail);
    }

    #[test]
    fn dmarc_tags_and_alignment() {
        let d = parse_dmarc("v=DMARC1; p=reject; adkim=s; rua=mailto:d@shop.example");
        assert_eq!(d.policy.as_deref(), Some("reject"));
        assert!(d.strict_dkim && !d.strict_spf && d.reports);
        assert_eq!(parse_dmarc("v=DMARC1; p=bogus").policy, None);
        assert_eq!(
            dmarc_records(&["v=DMARC1; p=none".into(), "v=spf1 -all".into()]),
            vec!["v=DMARC1; p=none"]
        );
        let judge = |rec: &str, dkim: Option<&str>, env: &str| {
            judge_dmarc("shop.example", rec, &parse_dmarc(rec), dkim, env).0
        };
        let rec = "v=DMARC1; p=quarantine";
        // Relaxed: a subdomain aligns.
        assert_eq!(
            judge(rec, Some("mail.shop.example"), "esp.example"),
            Status::Pass
        );
        assert_eq!(judge(rec, None, "bounce.shop.example"), Status::Pass);
        assert_eq!(judge(rec, Some("esp.example"), "esp.example"), Status::Fail);
        // Strict: only the exact domain.
        let strict = "v=DMARC1; p=reject; adkim=s; aspf=s";
        assert_eq!(
            judge(strict, Some("mail.shop.example"), "bounce.shop.example"),
            Status::Fail
        );
        assert_eq!(
            judge(strict, Some("shop.example"), "bounce.shop.example"),
            Status::Pass
        );
        assert_eq!(
            judge("v=DMARC1; p=none", Some("shop.example"), "x"),
            Status::Warn
        );
        assert_eq!(
            judge("v=DMARC1; p=reject; pct=50", Some("shop.example"), "x"),
            Status::Warn
        );
        assert_eq!(judge("v=DMARC1", Some("shop.example"), "x"), Status::Fail);
    }

    #[tokio::test]
    async fn lookups_follow_includes_and_count_to_ten() {
        let fake = Fake::new(&[
            (
                "shop.example",
                &["v=spf1 include:a.example include:b.example -all"],
            ),
            ("a.example", &["v=spf1 include:c.example a mx -all"]),
            ("b.example", &["v=spf1 ip4:192.0.2.1 -all"]),
            (
                "c.example",
                &["v=spf1 a mx ptr exists:%{i}.x include:a.example -all"],
            ),
            (
                "many.example",
                &["v=spf1 include:a.example include:d.example -all"],
            ),
            ("d.example", &["v=spf1 a mx a:1 a:2 a:3 a:4 -all"]),
            ("two.example", &["v=spf1 -all", "v=spf1 ~all"]),
            ("open.example", &["v=spf1 +all"]),
            ("none.example", &["google-site-verification=x"]),
        ]);
        // 2 + (1 + 2) + 0 + 5 = 10: at the limit, a pass.
        let c = check_spf(&fake, "shop.example").await;
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(c.detail.contains("10 lookups"), "{c:?}");
        // 2 + a's 3 + c's 5 + d's 6 = 16.
        let c = check_spf(&fake, "many.example").await;
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert_eq!(check_spf(&fake, "two.example").await.status, Status::Fail);
        assert_eq!(check_spf(&fake, "open.example").await.status, Status::Fail);
        assert_eq!(check_spf(&fake, "none.example").await.status, Status::Fail);
        let off = check_spf(&Offline, "shop.example").await;
        assert_eq!(off.status, Status::Warn);
        assert!(off.detail.starts_with("not looked up"), "{off:?}");
    }

    #[tokio::test]
    async fn dmarc_falls_back_to_the_organizational_domain() {
        let fake = Fake::new(&[
            ("none.example", &["google-site-verification=x"]),
            ("_dmarc.shop.example", &["v=DMARC1; p=reject"]),
            (
                "_dmarc.dup.example",
                &["v=DMARC1; p=reject", "v=DMARC1; p=none"],
            ),
        ]);
        let c = check_dmarc(
            &fake,
            "mail.shop.example",
            Some("shop.example"),
            "bounce.shop.example",
        )
        .await;
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(c.detail.starts_with("_dmarc.shop.example"), "{c:?}");
        assert_eq!(
            check_dmarc(&fake, "dup.example", None, "dup.example")
                .await
                .status,
            Status::Fail
        );
        assert_eq!(
            check_dmarc(&fake, "none.example", None, "none.example")
                .await
                .status,
            Status::Fail
        );
        assert_eq!(
            check_dmarc(&Offline, "shop.example", None, "shop.example")
                .await
                .status,
            Status::Warn
        );
        // A resolver that says NXDOMAIN for everything (closed network): not looked up.
        let nothing = Fake::new(&[]);
        let c = check_dmarc(&nothing, "shop.example", None, "shop.example").await;
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.detail.starts_with("not looked up"), "{c:?}");
        assert_eq!(
            check_spf(&nothing, "shop.example").await.status,
            Status::Warn
        );
    }
}
