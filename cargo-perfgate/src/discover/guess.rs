//! What `cargo perfgate init` reads in a service's sources (through `sources.rs`, nothing is
//! compiled or run): how the service takes its port, and a path worth requesting — a health or
//! readiness route when it has one. Each finding says where it was seen, so `init` can tell the user
//! what it based the configuration on.

use std::path::Path;

use crate::discover::sources::{matching, CrateSources, Token};

/// How a service is told which port to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortHow {
    /// A command-line flag taking the port (`--port`).
    Flag(String),
    /// An environment variable (`PORT`, `APP_PORT`).
    Env(String),
    /// It always binds this port.
    Fixed(u16),
}

/// A finding and where it was seen (`src/main.rs: "PORT"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen<T> {
    pub value: T,
    pub at: String,
}

/// How the service takes its port: a flag before a variable before a fixed address, as the first
/// two let perfgate choose a free port.
pub fn port_how(crates: &[&CrateSources], root: &Path) -> Option<Seen<PortHow>> {
    let mut flag = None;
    let mut env = None;
    let mut fixed = None;
    for (file, toks) in crates.iter().flat_map(|c| c.tokens()) {
        let at = |what: &str| {
            format!(
                "{}: {what}",
                file.strip_prefix(root).unwrap_or(file).display()
            )
        };
        for (i, t) in toks.iter().enumerate() {
            match t {
                Token::Str(s) if flag.is_none() && s.starts_with("--") && is_port_word(s) => {
                    flag = Some(Seen {
                        value: PortHow::Flag(s.clone()),
                        at: at(&format!("\"{s}\"")),
                    });
                }
                Token::Str(s) if env.is_none() && is_port_variable(s) => {
                    env = Some(Seen {
                        value: PortHow::Env(s.clone()),
                        at: at(&format!("\"{s}\"")),
                    });
                }
                Token::Str(s) if fixed.is_none() => {
                    if let Some(p) = fixed_address(s) {
                        fixed = Some(Seen {
                            value: PortHow::Fixed(p),
                            at: at(&format!("\"{s}\"")),
                        });
                    }
                }
                // `.long("port")` (clap's builder).
                Token::Ident(l) if l == "long" && flag.is_none() => {
                    if let (Some(Token::Punct('(')), Some(Token::Str(s))) =
                        (toks.get(i + 1), toks.get(i + 2))
                    {
                        if is_port_word(s) {
                            flag = Some(Seen {
                                value: PortHow::Flag(format!("--{s}")),
                                at: at(&format!(".long(\"{s}\")")),
                            });
                        }
                    }
                }
                // `#[arg(long)] port: u16` (clap's derive): the field's name in kebab case.
                Token::Punct('#')
                    if flag.is_none() && toks.get(i + 1).is_some_and(|t| t.is_punct('[')) =>
                {
                    if let Some(found) = derived_flag(toks, i + 1) {
                        flag = Some(Seen {
                            at: at(&found),
                            value: PortHow::Flag(found),
                        });
                    }
                }
                // `([0, 0, 0, 0], 3000)` or `([127, 0, 0, 1], 3000)`: a SocketAddr from parts.
                Token::Punct('[') if fixed.is_none() => {
                    if let Some(p) = address_parts(toks, i) {
                        fixed = Some(Seen {
                            value: PortHow::Fixed(p),
                            at: at(&format!("an address with port {p}")),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    flag.or(env).or(fixed)
}

fn is_port_word(s: &str) -> bool {
    let w = s.trim_start_matches('-');
    !w.is_empty()
        && w.to_ascii_lowercase().contains("port")
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `PORT`, `APP_PORT`, `HTTP_PORT`: an upper-case variable name with PORT in it.
fn is_port_variable(s: &str) -> bool {
    s.contains("PORT")
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// `"0.0.0.0:3000"`, `"127.0.0.1:8080"`, `"[::]:80"`, `"localhost:3000"`: the port of a listening
/// address written in full.
fn fixed_address(s: &str) -> Option<u16> {
    let (host, port) = s.rsplit_once(':')?;
    let host_ok = matches!(
        host,
        "0.0.0.0" | "127.0.0.1" | "localhost" | "[::]" | "[::1]" | "::"
    );
    (host_ok && !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
        .then(|| port.parse().ok())
        .flatten()
        .filter(|p| *p != 0)
}

fn number(t: Option<&Token>) -> Option<u64> {
    match t? {
        // `3_000u16` → 3000: the digits before any suffix.
        Token::Num(n) => n
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '_')
            .filter(|c| *c != '_')
            .collect::<String>()
            .parse()
            .ok(),
        _ => None,
    }
}

/// `[0, 0, 0, 0], 3000` at `open` (the `[`).
fn address_parts(toks: &[Token], open: usize) -> Option<u16> {
    let first = number(toks.get(open + 1))?;
    if first != 0 && first != 127 {
        return None;
    }
    let ok = (0..3).all(|k| {
        toks.get(open + 2 + 2 * k).is_some_and(|t| t.is_punct(','))
            && number(toks.get(open + 3 + 2 * k)).is_some()
    });
    if !ok
        || !toks.get(open + 8).is_some_and(|t| t.is_punct(']'))
        || !toks.get(open + 9).is_some_and(|t| t.is_punct(','))
    {
        return None;
    }
    number(toks.get(open + 10))
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

/// An `#[arg(long …)]`/`#[clap(long …)]` attribute at `open` (its `[`) on a field whose name says
/// port: the flag, `--` and the field's name in kebab case unless `long = "…"` names it.
fn derived_flag(toks: &[Token], open: usize) -> Option<String> {
    let end = matching(toks, open, '[', ']');
    let inner = &toks[open + 1..end];
    if !matches!(inner.first(), Some(Token::Ident(a)) if a == "arg" || a == "clap" || a == "structopt")
    {
        return None;
    }
    let long_at = inner.iter().position(|t| t.is_ident("long"))?;
    let named = match (inner.get(long_at + 1), inner.get(long_at + 2)) {
        (Some(Token::Punct('=')), Some(Token::Str(s))) => Some(s.clone()),
        _ => None,
    };
    // The field: after any further attributes and `pub`, `name :`.
    let mut k = end + 1;
    loop {
        match toks.get(k) {
            Some(Token::Punct('#')) if toks.get(k + 1).is_some_and(|t| t.is_punct('[')) => {
                k = matching(toks, k + 1, '[', ']') + 1;
            }
            Some(Token::Ident(p)) if p == "pub" => {
                k += 1;
                if toks.get(k).is_some_and(|t| t.is_punct('(')) {
                    k = matching(toks, k, '(', ')') + 1;
                }
            }
            _ => break,
        }
    }
    let field = match (toks.get(k), toks.get(k + 1)) {
        (Some(Token::Ident(f)), Some(Token::Punct(':'))) => f.clone(),
        _ => return None,
    };
    let flag = named.unwrap_or_else(|| field.replace('_', "-"));
    is_port_word(&flag).then(|| format!("--{flag}"))
}

/// The paths a readiness probe is usually on, best first.
const HEALTH_PATHS: &[&str] = &[
    "/healthz", "/health", "/readyz", "/ready", "/livez", "/live", "/ping", "/status", "/_health",
];

/// A path to request: a health or readiness route (`true`: fit for the readiness probe too), else
/// `/` when the sources route it.
pub fn probe_path(crates: &[&CrateSources], root: &Path) -> Option<(Seen<String>, bool)> {
    let mut paths: Vec<Seen<String>> = Vec::new();
    for (file, toks) in crates.iter().flat_map(|c| c.tokens()) {
        for t in toks {
            if let Token::Str(s) = t {
                let route_like = s.starts_with('/')
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
                if route_like {
                    paths.push(Seen {
                        value: s.clone(),
                        at: format!(
                            "{}: \"{s}\"",
                            file.strip_prefix(root).unwrap_or(file).display()
                        ),
                    });
                }
            }
        }
    }
    let healthy = |p: &str| {
        let l = p.to_ascii_lowercase();
        l.contains("health") || l.contains("ready")
    };
    for h in HEALTH_PATHS {
        if let Some(s) = paths.iter().find(|s| s.value == *h) {
            return Some((s.clone(), true));
        }
    }
    if let Some(s) = paths.iter().find(|s| healthy(&s.value)) {
        return Some((s.clone(), true));
    }
    paths
        .into_iter()
        .find(|s| s.value == "/")
        .map(|s| (s, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::sources::crate_sources;

    fn guess(main: &str) -> (Option<PortHow>, Option<(String, bool)>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), main).unwrap();
        let c = crate_sources(&dir.path().join("src/main.rs"));
        (
            port_how(&[&c], dir.path()).map(|s| s.value),
            probe_path(&[&c], dir.path()).map(|(s, h)| (s.value, h)),
        )
    }

    #[test]
    fn an_axum_service_on_port_env_with_a_health_route() {
        let (port, path) = guess(
            r#"
            use axum::{routing::get, Router};
            #[tokio::main]
            async fn main() {
                let app = Router::new().route("/", get(|| async { "hi" })).route("/healthz", get(|| async { "ok" }));
                let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
                let l = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await.unwrap();
                axum::serve(l, app).await.unwrap();
            }"#,
        );
        assert_eq!(port, Some(PortHow::Env("PORT".into())));
        assert_eq!(path, Some(("/healthz".into(), true)));
    }

    #[test]
    fn clap_flags_variables_and_fixed_addresses() {
        let (port, _) = guess("#[derive(Parser)] struct A { /// the port\n #[arg(long, default_value_t = 8080)] pub http_port: u16 }");
        assert_eq!(port, Some(PortHow::Flag("--http-port".into())));
        let (port, _) = guess("#[derive(Parser)] struct A { #[arg(short, long = \"listen-port\", env = \"APP_PORT\")] p: u16 }");
        assert_eq!(port, Some(PortHow::Flag("--listen-port".into())));
        let (port, _) =
            guess("fn main() { let p = args().skip_while(|a| a != \"--port\").nth(1); }");
        assert_eq!(port, Some(PortHow::Flag("--port".into())));
        let (port, _) = guess("Command::new(\"x\").arg(Arg::new(\"p\").long(\"port\"))");
        assert_eq!(port, Some(PortHow::Flag("--port".into())));
        let (port, _) = guess("let p: u16 = env::var(\"SHOP_PORT\").unwrap().parse().unwrap();");
        assert_eq!(port, Some(PortHow::Env("SHOP_PORT".into())));
        let (port, path) =
            guess("TcpListener::bind(\"127.0.0.1:8080\"); // \"/healthz\" in a comment");
        assert_eq!(port, Some(PortHow::Fixed(8080)));
        assert_eq!(path, None);
        let (port, path) =
            guess("let addr = SocketAddr::from(([0, 0, 0, 0], 3_000)); router.at(\"/api/health\")");
        assert_eq!(port, Some(PortHow::Fixed(3000)));
        assert_eq!(path, Some(("/api/health".into(), true)));
        let (port, path) = guess("fn main() { serve(\"/\", \"/etc/conf\") }");
        assert_eq!(port, None);
        assert_eq!(path, Some(("/".into(), false)));
    }
}
