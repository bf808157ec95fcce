//! TLS for `https://` targets: rustls with the ring provider, the platform's trust roots
//! (rustls-native-certs: the system store, `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus an extra CA from
//! `PERFGATE_CA_CERT` (the CLI's `--ca-cert`). A certificate that does not verify is never accepted:
//! the handshake fails as a connect error that says why and names `--ca-cert`.
//!
//! Why the platform's roots rather than a compiled-in bundle: a staging service is often signed by a
//! company CA that is installed in the system store, which then works as it does for curl.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hyper::http::uri::Authority;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{ErrorKind, ExchangeError};

/// The ALPN protocols offered: the pool's lean connections speak HTTP/1.1, the shared connection of
/// `PERFGATE_HTTP2=1` HTTP/2 (which over TLS must be agreed by ALPN, RFC 9113 §3.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Alpn {
    Http1,
    H2,
}

/// The TLS settings of one run, shared by its workers: built once, on the first `https://` request
/// (or up front by [`Tls::check`]), so a run that speaks only `http://` never reads a certificate.
pub(crate) struct Tls {
    ca_cert: Option<PathBuf>,
    configs: OnceLock<Result<Configs, String>>,
}

struct Configs {
    http1: Arc<ClientConfig>,
    h2: Arc<ClientConfig>,
    /// Said when a certificate does not verify: no platform root was found.
    no_platform_roots: bool,
}

impl Tls {
    /// `ca_cert`: a PEM file of CA certificates trusted besides the platform's.
    pub(crate) fn new(ca_cert: Option<PathBuf>) -> Tls {
        Tls {
            ca_cert,
            configs: OnceLock::new(),
        }
    }

    /// Builds the configuration now: a bad CA file is a setup error before any load, not an error
    /// of every request.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.configs().map(drop)
    }

    fn configs(&self) -> Result<&Configs, String> {
        self.configs
            .get_or_init(|| Configs::build(self.ca_cert.as_ref()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The client configuration offering `alpn` (for hyper's client to other hosts too).
    pub(crate) fn config(&self, alpn: Alpn) -> Result<Arc<ClientConfig>, String> {
        let c = self.configs()?;
        Ok(match alpn {
            Alpn::Http1 => c.http1.clone(),
            Alpn::H2 => c.h2.clone(),
        })
    }

    /// The TLS handshake over a connected stream to `authority`, whose host is the name the
    /// certificate must carry (SNI too, unless it is an IP address).
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        authority: &Authority,
        alpn: Alpn,
    ) -> Result<TlsStream<TcpStream>, ExchangeError> {
        let connect = |m: String| (ErrorKind::Connect, m);
        let configs = self
            .configs()
            .map_err(|e| connect(format!("TLS setup: {e}")))?;
        let name = server_name(authority.host()).map_err(connect)?;
        let config = match alpn {
            Alpn::Http1 => &configs.http1,
            Alpn::H2 => &configs.h2,
        };
        let stream = TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| connect(handshake_error(&e, authority, configs.no_platform_roots)))?;
        if alpn == Alpn::H2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(connect(format!(
                "{authority} did not agree to HTTP/2 in the TLS handshake (ALPN `h2`); unset \
                 PERFGATE_HTTP2 to speak HTTP/1.1 to it"
            )));
        }
        Ok(stream)
    }
}

impl Configs {
    fn build(ca_cert: Option<&PathBuf>) -> Result<Configs, String> {
        let mut roots = RootCertStore::empty();
        // Unreadable entries of the system store are skipped, as curl does: what matters is whether
        // the target's certificate verifies, which the handshake says.
        let platform = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(platform.certs);
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA certificate {}: {e}", path.display()))?;
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    format!("{} is not a PEM certificate file: {e}", path.display())
                })?;
                roots.add(cert).map_err(|e| {
                    format!(
                        "{} holds a certificate rustls cannot use as a CA: {e}",
                        path.display()
                    )
                })?;
                found += 1;
            }
            if found == 0 {
                return Err(format!(
                    "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
            }
        }
        let roots = Arc::new(roots);
        let config = |alpn: &[u8]| -> Result<Arc<ClientConfig>, String> {
            // The provider is named rather than taken from the process default: a scenario crate
            // whose other dependencies enable aws-lc-rs too must not make the default ambiguous.
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(c))
        };
        Ok(Configs {
            http1: config(b"http/1.1")?,
            h2: config(b"h2")?,
            no_platform_roots: added == 0,
        })
    }
}

/// The name to verify the certificate against: the URL's host, or its IP address (`[::1]` without
/// the brackets).
fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("`{host}` is not a valid TLS server name: {e}"))
}

/// How to make a certificate signed by a private CA verify.
const CA_HINT: &str =
    "if it is signed by a private CA, pass that CA's certificate (PEM) with --ca-cert FILE \
     (PERFGATE_CA_CERT)";

/// The rustls error somewhere in an error's chain (hyper, hyper-rustls and tokio-rustls wrap it,
/// in `io::Error`s whose `source` skips the error they wrap, hence the look inside them).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The way out when `e` is a certificate that did not verify.
pub(crate) fn certificate_hint(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    matches!(rustls_error(e), Some(rustls::Error::InvalidCertificate(_))).then_some(CA_HINT)
}

/// What a failed handshake says: a certificate that does not verify is named as such, with the way
/// to trust a private CA.
fn handshake_error(e: &std::io::Error, authority: &Authority, no_platform_roots: bool) -> String {
    match rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(why)) => {
            let why = match why {
                rustls::CertificateError::UnknownIssuer => {
                    "it is not signed by a CA this client trusts".to_owned()
                }
                other => other.to_string(),
            };
            let mut m =
                format!("TLS: the certificate of {authority} does not verify ({why}); {CA_HINT}");
            if no_platform_roots {
                m.push_str("; no trusted root was found in this system's certificate store either");
            }
            m
        }
        Some(other) => format!("TLS handshake with {authority} failed: {other}"),
        None => format!("TLS handshake with {authority} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_hosts_or_ip_addresses() {
        assert!(matches!(
            server_name("staging.example").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("bad host").is_err());
    }

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_a_setup_error() {
        let dir = std::env::temp_dir().join(format!("perfgate-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = Tls::new(Some(missing.clone())).check().unwrap_err();
        assert!(
            e.contains("cannot read the CA certificate") && e.contains("missing.pem"),
            "{e}"
        );
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = Tls::new(Some(junk)).check().unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        // Without a CA file the platform's roots suffice to build.
        Tls::new(None).check().unwrap();
    }
}
