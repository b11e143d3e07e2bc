//! `retain doctor`: checks a workspace's sending setup against what mailbox providers require of
//! bulk senders (Gmail and Yahoo since 2024, Outlook.com since 2025): a valid From address, DKIM
//! with a key that loads and a signing domain aligned with the From domain, one-click unsubscribe
//! and tracking links over https, TLS to the SMTP server, and a bounce domain so bounces map to
//! sends. [`check`] is pure: the caller hands in the configuration and the DKIM settings it found,
//! and DNS records (SPF, DMARC) are listed as not looked up, with what to look for;
//! [`check_with_dns`] looks them up through a resolver ([`crate::dns_auth`]).

use retain_core::config::Config;
use retain_core::import::customers::is_valid_email;
use serde::Serialize;

use crate::message::Dkim;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    /// Not checked here (e.g. DNS records): the detail says what to look for.
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Skip => "skip",
        }
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

/// DKIM as configured in the environment (`RETAIN_DKIM_SELECTOR`, `RETAIN_DKIM_KEY_FILE`,
/// `RETAIN_DKIM_DOMAIN`): the key file's content or why it could not be read.
#[derive(Debug, Clone, Default)]
pub struct DkimSettings {
    pub selector: Option<String>,
    pub domain: Option<String>,
    pub key: Option<Result<String, String>>,
}

/// The domain of an address, lowercase.
fn domain_of(address: &str) -> Option<String> {
    let a = address.trim();
    let a = match (a.rfind('<'), a.rfind('>')) {
        (Some(i), Some(j)) if i < j => &a[i + 1..j],
        _ => a,
    };
    a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase())
}

/// Relaxed DMARC alignment: the signing domain is the From domain or shares its last two
/// labels (an approximation of the organizational domain without the public suffix list).
fn aligned(from: &str, signing: &str) -> bool {
    let org = |d: &str| {
        let labels: Vec<&str> = d.trim_end_matches('.').rsplit('.').take(2).collect();
        labels.into_iter().rev().collect::<Vec<_>>().join(".")
    };
    from == signing || org(from) == org(signing)
}

/// Every check, in a fixed order.
pub fn check(config: &Config, dkim: &DkimSettings) -> Vec<Check> {
    let mut out = Vec::new();
    let mut add = |name, status, detail: String| {
        out.push(Check {
            name,
            status,
            detail,
        })
    };
    let from = config.sender.from.trim();
    let from_addr = from
        .rfind('<')
        .and_then(|i| from[i + 1..].split('>').next())
        .unwrap_or(from);
    let from_domain = domain_of(from);
    if from.is_empty() {
        add("from", Status::Fail, "sender.from is not set".into());
    } else if !is_valid_email(from_addr) {
        add(
            "from",
            Status::Fail,
            format!("sender.from '{from}' is not a valid address"),
        );
    } else {
        add("from", Status::Pass, format!("From: {from}"));
    }

    match (&dkim.selector, &dkim.key) {
        (None, _) => add(
            "dkim",
            Status::Fail,
            "DKIM is not configured (RETAIN_DKIM_SELECTOR, RETAIN_DKIM_KEY_FILE): bulk senders must sign".into(),
        ),
        (Some(_), None) => add(
            "dkim",
            Status::Fail,
            "RETAIN_DKIM_SELECTOR is set but RETAIN_DKIM_KEY_FILE is not".into(),
        ),
        (Some(_), Some(Err(e))) => add("dkim", Status::Fail, format!("the DKIM key file: {e}")),
        (Some(selector), Some(Ok(key))) => {
            let signing = dkim
                .domain
                .clone()
                .or_else(|| from_domain.clone())
                .unwrap_or_default();
            let ed25519 = !key.contains("-----BEGIN");
            match Dkim::new(selector, &signing, key, ed25519) {
                Ok(_) => add(
                    "dkim",
                    Status::Pass,
                    format!(
                        "{} key loads; selector {selector}, d={signing} (publish {selector}._domainkey.{signing})",
                        if ed25519 { "Ed25519" } else { "RSA" }
                    ),
                ),
                Err(e) => add("dkim", Status::Fail, e.to_string()),
            }
            match &from_domain {
                Some(f) if aligned(f, &signing.to_ascii_lowercase()) => add(
                    "dkim alignment",
                    Status::Pass,
                    format!("d={signing} aligns with the From domain {f}"),
                ),
                Some(f) => add(
                    "dkim alignment",
                    Status::Fail,
                    format!("d={signing} does not align with the From domain {f}: DMARC fails"),
                ),
                None => add("dkim alignment", Status::Fail, "no From domain".into()),
            }
        }
    }

    let base = config.tracking.base_url.trim();
    let loopback = ["://localhost", "://127.", "://[::1]"]
        .iter()
        .any(|l| base.contains(l));
    if base.starts_with("https://") {
        add(
            "unsubscribe and tracking links",
            Status::Pass,
            format!(
                "https ({base}): RFC 8058 one-click unsubscribe and links work in every mailbox"
            ),
        );
    } else if loopback {
        add(
            "unsubscribe and tracking links",
            Status::Warn,
            format!("{base} is this machine: fine for trying things, not for real recipients"),
        );
    } else {
        add(
            "unsubscribe and tracking links",
            Status::Fail,
            format!("tracking.base_url '{base}' is not https: one-click unsubscribe (RFC 8058) needs an https URL"),
        );
    }

    let smtp = config.smtp.url.trim();
    if smtp.is_empty() {
        add(
            "smtp",
            Status::Warn,
            "smtp.url is not set (sending writes to the file outbox only)".into(),
        );
    } else if smtp.starts_with("smtps://")
        || smtp.contains("tls=")
        || smtp.starts_with("smtp://") && smtp.contains(":587")
    {
        add("smtp", Status::Pass, format!("{} with TLS", redact(smtp)));
    } else {
        add(
            "smtp",
            Status::Warn,
            format!(
                "{}: TLS is required except to this machine; use smtps:// or port 587",
                redact(smtp)
            ),
        );
    }

    let bounce = config.sending.bounce_domain.trim();
    if bounce.is_empty() {
        add(
            "bounce domain",
            Status::Warn,
            "sending.bounce_domain is not set: bounces return to the From address and cannot be matched to sends by their return path".into(),
        );
    } else {
        add(
            "bounce domain",
            Status::Pass,
            format!("return paths bounces+…@{bounce}: route this domain's mail to `retain bounces ingest -`"),
        );
    }

    let domain = from_domain.unwrap_or_else(|| "your domain".into());
    add(
        "spf",
        Status::Skip,
        format!("not looked up here: {domain} needs a TXT record 'v=spf1 … -all' that includes your SMTP provider"),
    );
    add(
        "dmarc",
        Status::Skip,
        format!(
            "not looked up here: _dmarc.{domain} needs a TXT record 'v=DMARC1; p=none' or stricter"
        ),
    );
    out
}

/// [`check`], with SPF and DMARC looked up through `resolver` (`None`: listed as not looked
/// up, as [`check`] does): SPF of the envelope domain (the bounce domain, else the From
/// domain), DMARC of the From domain judged against the DKIM signing domain and the envelope
/// domain. See [`crate::dns_auth`].
pub async fn check_with_dns<R: crate::dns_auth::TxtResolver>(
    config: &Config,
    dkim: &DkimSettings,
    resolver: Option<&R>,
) -> Vec<Check> {
    let mut out = check(config, dkim);
    let (Some(resolver), Some(from)) = (resolver, domain_of(config.sender.from.trim())) else {
        return out;
    };
    let bounce = config.sending.bounce_domain.trim().to_ascii_lowercase();
    let envelope = if bounce.is_empty() {
        from.clone()
    } else {
        bounce
    };
    let signing = dkim.selector.as_ref().map(|_| {
        dkim.domain
            .clone()
            .unwrap_or_else(|| from.clone())
            .to_ascii_lowercase()
    });
    let spf = crate::dns_auth::check_spf(resolver, &envelope).await;
    let dmarc = crate::dns_auth::check_dmarc(resolver, &from, signing.as_deref(), &envelope).await;
    for c in out.iter_mut() {
        match c.name {
            "spf" => *c = spf.clone(),
            "dmarc" => *c = dmarc.clone(),
            _ => {}
        }
    }
    out
}

/// An SMTP URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(from: &str, base: &str, smtp: &str, bounce: &str) -> Config {
        let mut c = Config::default();
        c.sender.from = from.into();
        c.tracking.base_url = base.into();
        c.smtp.url = smtp.into();
        c.sending.bounce_domain = bounce.into();
        c
    }

    fn status(checks: &[Check], name: &str) -> Status {
        checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.status)
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    #[test]
    fn a_bare_workspace_fails_dkim_and_https() {
        let c = config("Shop <news@shop.example>", "http://shop.example", "", "");
        let checks = check(&c, &DkimSettings::default());
        assert_eq!(status(&checks, "from"), Status::Pass);
        assert_eq!(status(&checks, "dkim"), Status::Fail);
        assert_eq!(
            status(&checks, "unsubscribe and tracking links"),
            Status::Fail
        );
        assert_eq!(status(&checks, "bounce domain"), Status::Warn);
        assert_eq!(status(&checks, "spf"), Status::Skip);
    }

    #[test]
    fn a_loadable_key_on_an_aligned_domain_passes() {
        // An Ed25519 key (base64 of 32 bytes), as lettre takes it.
        let key = "MC4CAQAwBQYDK2VwBCIEIEWbJdQNW8wdl6oY/RmQfbWrw4DFL0+Xb3y5o+33K0tS".to_string();
        let raw = "ld7SQt8U3Eg5oyV0j1qGDpO9QExCYSKL3Ge6rSJhV9c=".to_string();
        let c = config(
            "news@mail.shop.example",
            "https://t.shop.example",
            "smtps://u:secret@smtp.example:465",
            "bounce.shop.example",
        );
        let mut dkim = DkimSettings {
            selector: Some("s1".into()),
            domain: Some("shop.example".into()),
            key: Some(Ok(raw)),
        };
        let checks = check(&c, &dkim);
        assert_eq!(status(&checks, "dkim"), Status::Pass, "{checks:?}");
        assert_eq!(status(&checks, "dkim alignment"), Status::Pass);
        assert_eq!(
            status(&checks, "unsubscribe and tracking links"),
            Status::Pass
        );
        assert_eq!(status(&checks, "smtp"), Status::Pass);
        assert!(
            checks.iter().all(|c| !c.detail.contains("secret")),
            "the SMTP password is never shown"
        );
        // A signing domain of another organisation does not align; a key that does not parse
        // fails.
        dkim.domain = Some("esp.example".into());
        assert_eq!(status(&check(&c, &dkim), "dkim alignment"), Status::Fail);
        dkim.key = Some(Ok(format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{key}\n-----END RSA PRIVATE KEY-----"
        )));
        assert_eq!(status(&check(&c, &dkim), "dkim"), Status::Fail);
    }
}
