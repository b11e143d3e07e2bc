//! `retain doctor`: checks the workspace's sending setup (From address, DKIM key and alignment,
//! https links for one-click unsubscribe, SMTP TLS, bounce domain) and says what the mailbox
//! providers' bulk-sender rules still need. The checks are the mailer's; this reads the DKIM
//! settings from the environment and prints.

use anyhow::Result;
use clap::Args as ClapArgs;
use retain_mailer::dns_auth::SystemResolver;
use retain_mailer::doctor::{check_with_dns, DkimSettings, Status};

use super::{exit, fail, Context};
use crate::output::{print_json, Format, Table};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain doctor
  retain doctor --offline
  RETAIN_DKIM_SELECTOR=s1 RETAIN_DKIM_KEY_FILE=dkim.pem retain doctor --format json

SPF (of the bounce domain, else the From domain) and DMARC (of the From domain) are looked up
in DNS with a short timeout; offline or timed out they are warnings, \"not looked up\".
Exit code 3 when a check fails (the setup would break the providers' rules); warnings and DNS
records that were not looked up do not fail it.")]
pub struct Args {
    /// Do not look up SPF and DMARC in DNS (listed as not looked up).
    #[arg(long)]
    pub offline: bool,
    /// Seconds each DNS query may take.
    #[arg(long, default_value_t = 3)]
    pub dns_timeout: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let dkim = DkimSettings {
        selector: env("RETAIN_DKIM_SELECTOR"),
        domain: env("RETAIN_DKIM_DOMAIN"),
        key: env("RETAIN_DKIM_KEY_FILE")
            .map(|f| std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))),
    };
    let resolver = SystemResolver {
        timeout: std::time::Duration::from_secs(args.dns_timeout.clamp(1, 30)),
    };
    let checks = check_with_dns(&ctx.config, &dkim, (!args.offline).then_some(&resolver)).await;
    match args.format {
        Format::Json => print_json(&checks)?,
        _ => {
            let mut t = Table::new(["check", "status", "detail"]);
            for c in &checks {
                t.row([
                    c.name.to_string(),
                    c.status.as_str().to_string(),
                    c.detail.clone(),
                ]);
            }
            if args.format == Format::Csv {
                t.print_csv()?;
            } else {
                print!("{}", t.render());
            }
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        return Err(fail(
            exit::BAD_INPUT,
            format!("{failed} check(s) failed: fix them before sending to real recipients"),
        ));
    }
    Ok(())
}
