//! A minimal HTTPS GET for the SNS webhook: the signing certificate of a message and the
//! subscription confirmation URL. Only URLs [`super::verify::sns_url_allowed`] accepts are
//! fetched (https, `sns.<region>.amazonaws.com`, port 443), over rustls with the system's root
//! certificates, with a timeout and a size limit; the answer must be `200`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{self, pki_types::ServerName};

use super::verify::sns_url_allowed;
use super::FetchFn;

/// The largest answer read (a certificate is about 2 KB).
const MAX_BYTES: u64 = 64 * 1024;

/// A fetcher over HTTPS with the system's root certificates, each GET limited to `timeout`.
pub fn https_fetcher(timeout: Duration) -> Result<FetchFn, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for c in found.certs {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err("no system root certificates".into());
    }
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    Ok(Arc::new(move |url: String| {
        let config = config.clone();
        Box::pin(async move {
            tokio::time::timeout(timeout, get(config, &url))
                .await
                .map_err(|_| "timed out".to_string())?
        })
    }))
}

async fn get(config: Arc<rustls::ClientConfig>, url: &str) -> Result<String, String> {
    if !sns_url_allowed(url) {
        return Err(format!("refusing to fetch {url}"));
    }
    let rest = url.trim_start_matches("https://");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host, 443))
        .await
        .map_err(|e| format!("{host}: {e}"))?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("{host}: {e}"))?;
    let req = format!(
        "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: retain\r\nConnection: close\r\n\r\n",
        if path.is_empty() { "/" } else { path }
    );
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    // A peer that closes without TLS close_notify still gave us the whole HTTP/1.0 answer.
    let _ = (&mut tls).take(MAX_BYTES).read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "not an HTTP answer".to_string())?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!("{host} answered {status}"));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_sns_urls_are_fetched() {
        let Ok(fetch) = https_fetcher(Duration::from_secs(2)) else {
            return; // no root certificates on this machine: nothing to fetch with anyway
        };
        for url in [
            "https://evil.example/cert.pem",
            "http://sns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        ] {
            let e = fetch(url.to_string()).await.expect_err("refused");
            assert!(e.starts_with("refusing"), "{url}: {e}");
        }
    }
}
