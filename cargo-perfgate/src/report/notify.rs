//! `--notify URL` / `PERFGATE_NOTIFY_URL`: on failure, a Slack-compatible JSON message (`text` plus
//! `blocks`; Mattermost and Rocket.Chat read `text`) POSTed to a webhook.
//!
//! The URL is a secret (its path is the token): it is never printed, logged, written to a report or
//! put on a command line, and no error message built here contains it. Delivery failure is a warning
//! for the caller, never a change of verdict.
//!
//! One blocking request over a `TcpStream` (HTTP/1.1, `Connection: close`), through rustls for
//! `https://` (the ring provider and the system's trust roots, as the load generator's TLS), so no
//! external program sees the URL.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use perfgate_runtime::format::format_value;
use serde_json::json;

use crate::gate::Outcome;
use crate::results::RunResults;
use crate::slo::Verdict;
use crate::text::describe_decision;

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_LINES: usize = 12;

/// The lines of the message: one per failed check, regression or errored scenario.
pub fn failure_lines(report: &RunResults) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &report.scenarios {
        for c in s.checks.iter().filter(|c| !c.passed) {
            let measured = c
                .measured
                .map(|v| format_value(c.slo.metric, v))
                .unwrap_or_else(|| "not measured".into());
            lines.push(format!(
                "`{}` {}: SLO {} {} → {} ({})",
                s.id,
                c.slo.metric,
                c.slo.op.as_str(),
                format_value(c.slo.metric, c.slo.threshold),
                measured,
                c.description
            ));
        }
        for t in s.trends.iter().filter(|t| t.outcome == Outcome::Fail) {
            lines.push(format!("`{}` {}", s.id, t.describe()));
        }
        for d in s.regressions.iter().filter(|d| d.outcome == Outcome::Fail) {
            lines.push(format!("`{}` {}", s.id, describe_decision(d)));
        }
        match s.verdict {
            Verdict::Error | Verdict::Fail if s.error.is_some() => {
                let first = s.error.as_deref().unwrap_or_default().lines().next();
                lines.push(format!("`{}`: {}", s.id, first.unwrap_or_default()));
            }
            Verdict::Invalid => lines.push(format!(
                "`{}`: invalid measurement ({})",
                s.id,
                s.invalid_reason()
            )),
            _ => {}
        }
    }
    lines
}

/// The JSON body. `run_url`: a link to the CI run, when known.
pub fn payload(report: &RunResults, run_url: Option<&str>) -> serde_json::Value {
    let bad = report
        .scenarios
        .iter()
        .filter(|s| s.verdict != Verdict::Pass)
        .count();
    let commit = report
        .environment
        .git_commit
        .as_deref()
        .map(|c| format!(" at `{}`", &c[..c.len().min(12)]))
        .unwrap_or_default();
    let head = format!(
        ":x: perfgate failed{commit}: {bad} of {} scenario{} did not pass",
        report.scenarios.len(),
        if report.scenarios.len() == 1 { "" } else { "s" }
    );
    let mut lines = failure_lines(report);
    // Slack cuts a section at 3000 characters: keep the message readable with many failures.
    if lines.len() > MAX_LINES {
        let more = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        lines.push(format!("… and {more} more (see the run)"));
    }
    for l in &mut lines {
        if l.chars().count() > 200 {
            *l = l.chars().take(199).collect::<String>() + "…";
        }
    }
    let mut text = head.clone();
    for l in &lines {
        text.push_str("\n• ");
        text.push_str(l);
    }
    let link = run_url.map(|u| format!("<{u}|run {}>", report.run_id));
    if let Some(l) = &link {
        text.push('\n');
        text.push_str(l);
    }
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": head}}),
        json!({"type": "section", "text": {"type": "mrkdwn",
            "text": lines.iter().map(|l| format!("• {l}")).collect::<Vec<_>>().join("\n")}}),
    ];
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": link.unwrap_or_else(|| format!("run {}", report.run_id))}]}));
    json!({ "text": text, "blocks": blocks })
}

/// Why a notification was not delivered, in words that never contain the URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotifyError(String);

/// POSTs `body` to `url`.
pub fn post(url: &str, body: &serde_json::Value) -> Result<(), NotifyError> {
    let body = serde_json::to_vec(body)
        .map_err(|e| NotifyError(format!("serialising the message: {e}")))?;
    if let Some(rest) = url.strip_prefix("http://") {
        post_to(rest, false, &body).map_err(NotifyError)
    } else if let Some(rest) = url.strip_prefix("https://") {
        post_to(rest, true, &body).map_err(NotifyError)
    } else {
        Err(NotifyError(
            "the webhook URL must start with http:// or https://".into(),
        ))
    }
}

/// `rest`: the URL after its scheme.
fn post_to(rest: &str, tls: bool, body: &[u8]) -> Result<(), String> {
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    if authority.contains('@') {
        return Err("credentials in the webhook URL are not supported".into());
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'));
    let host_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("resolving the webhook's host: {e}"))?
        .next()
        .ok_or("the webhook's host has no address")?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .map_err(|e| format!("connecting to the webhook: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| format!("configuring the connection: {e}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: cargo-perfgate/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        perfgate_runtime::format::PERFGATE_VERSION,
        body.len()
    );
    if !tls {
        return exchange(&mut stream, head.as_bytes(), body);
    }
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port.as_str(), |(h, _)| h);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("the webhook's host is not a TLS server name: {e}"))?;
    let session = rustls::ClientConnection::new(tls_config()?, name)
        .map_err(|e| format!("TLS setup: {e}"))?;
    exchange(
        &mut rustls::StreamOwned::new(session, stream),
        head.as_bytes(),
        body,
    )
}

/// rustls with the ring provider (named: the process default may be ambiguous) and the system's
/// trust roots (its store, `SSL_CERT_FILE`, `SSL_CERT_DIR`).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Writes the request, then reads the status line and judges it.
fn exchange(stream: &mut (impl Read + Write), head: &[u8], body: &[u8]) -> Result<(), String> {
    stream
        .write_all(head)
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending the message: {e}"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    // The status line is all that matters; stop reading once it is in.
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) => return Err(format!("reading the webhook's answer: {e}")),
        }
    }
    let status_line = String::from_utf8_lossy(&response);
    let status_line = status_line.lines().next().unwrap_or_default();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("the webhook did not answer in HTTP")?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("the webhook answered HTTP {code}"))
    }
}
