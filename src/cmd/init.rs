//! `retain init DIR`: creates a workspace — commented `retain.toml`, starter templates, the
//! default `goals.toml`, the tracking secret key (0600) and the database.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args as ClapArgs;
use retain_core::config::{Config, DEFAULT_CONFIG};

use super::{exit, fail, open_store, CONFIG_FILE};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}
pub use embedded::TEMPLATES;

/// The key that signs tracking links, created by `init`.
pub const SECRET_KEY_FILE: &str = "secret.key";

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Directory of the new workspace (created if missing).
    pub dir: PathBuf,
    /// Overwrite retain.toml and starter files that already exist (the database is kept).
    #[arg(long)]
    pub force: bool,
}

/// What `init` created.
#[derive(Debug, Default)]
pub struct Created {
    pub files: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
}

pub async fn run(args: Args, quiet: bool) -> Result<()> {
    let created = init(&args.dir, args.force).await?;
    if !quiet {
        println!("Created workspace {}", args.dir.display());
        for f in &created.files {
            println!("  + {}", f.display());
        }
        for f in &created.kept {
            println!("  = {} (exists, kept; --force to overwrite)", f.display());
        }
        println!(
            "\nNext: retain --workspace {} import orders orders.csv",
            args.dir.display()
        );
    }
    Ok(())
}

/// Creates (or completes) a workspace at `dir`.
pub async fn init(dir: &Path, force: bool) -> Result<Created> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut created = Created::default();
    let mut write = |rel: &str, bytes: &[u8]| -> Result<()> {
        let path = dir.join(rel);
        if path.exists() && !force {
            created.kept.push(path);
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        created.files.push(path);
        Ok(())
    };
    write(CONFIG_FILE, DEFAULT_CONFIG.as_bytes())?;
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates)
        .with_context(|| format!("creating {}", templates.display()))?;
    for (rel, bytes) in TEMPLATES {
        if *rel == "goals.toml" {
            write("goals.toml", bytes)?;
        } else {
            write(&format!("templates/{rel}"), bytes)?;
        }
    }
    if !TEMPLATES.iter().any(|(rel, _)| *rel == "goals.toml") {
        write(
            "goals.toml",
            b"# Retention goals: see `retain plan --help`.\n",
        )?;
    }
    let key = dir.join(SECRET_KEY_FILE);
    if !key.exists() {
        write_secret_key(&key)?;
        created.files.push(key);
    }
    let config = Config::load(&dir.join(CONFIG_FILE))?;
    let store = open_store(dir, &config).await?;
    store.close().await;
    if config.database.url.is_empty() {
        created.files.push(dir.join(super::DATABASE_FILE));
    }
    Ok(created)
}

/// Writes 32 random bytes, hex-encoded, readable by the owner only.
fn write_secret_key(path: &Path) -> Result<()> {
    use std::io::Write;
    let mut bytes = [0u8; 32];
    getrandom(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(hex.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Fills `buf` from the operating system's random source.
fn getrandom(buf: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| {
            fail(
                exit::FAILURE,
                format!("cannot read /dev/urandom for the secret key: {e}"),
            )
        })
}
