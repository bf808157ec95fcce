//! `https://` targets: the engine against a TLS server on 127.0.0.1 whose certificate is signed by a
//! CA made at test time. One test, because the CA and HTTP/2 settings are the protocol's environment
//! variables, which no other test of this binary may see change.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::{serial, serve_on, spec, test_pki};
use perfgate_runtime::__private::run_scenario;
use perfgate_runtime::format::{env, LoadModel, ScenarioResult};
use perfgate_runtime::Ctx;

fn closed(users: u64, duration_ms: u64) -> perfgate_runtime::format::ScenarioSpec {
    spec(LoadModel::Closed { users, think_ms: 5 }, duration_ms)
}

fn run(url: &str) -> ScenarioResult {
    run_scenario(&closed(2, 600), url, |ctx: Ctx| async move {
        ctx.get("/tls").send().await?.expect_status(200)?;
        Ok(())
    })
    .unwrap()
}

#[test]
fn https_targets_verify_against_the_given_ca_or_fail_to_connect() {
    let _serial = serial();
    let pki = test_pki();
    let dir = tempdir();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    // (connection, protocol version) of every request the server saw.
    let seen = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let log = seen.clone();
    let url = serve_on(Some(pki.acceptor), move |req| {
        log.lock().unwrap().push((req.connection, req.version));
        async { (200, "ok".to_owned()) }
    });
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    std::env::remove_var(env::HTTP2);

    // The CA given: every request succeeds, over HTTP/1.1 on kept-alive connections (two users,
    // so two connections however many requests).
    std::env::set_var(env::CA_CERT, &ca);
    let r = run(&url);
    assert!(r.iterations.count >= 10, "{}", r.iterations.count);
    assert_eq!(
        r.iterations.errors.total(),
        0,
        "{:?}",
        r.iterations.error_samples
    );
    let requests = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        requests.iter().all(|(_, v)| v == "HTTP/1.1"),
        "{requests:?}"
    );
    let connections: BTreeSet<u64> = requests.iter().map(|(c, _)| *c).collect();
    assert!(
        connections.len() <= 2 && requests.len() as u64 >= r.iterations.count,
        "{} requests on {} connections",
        requests.len(),
        connections.len()
    );

    // An absolute https:// URL to another host than the base URL's goes through hyper, with the
    // same trust.
    let absolute = format!("{url}/other");
    let r = run_scenario(&closed(1, 300), "http://127.0.0.1:9", move |ctx: Ctx| {
        let absolute = absolute.clone();
        async move {
            ctx.get(absolute).send().await?.expect_status(200)?;
            Ok(())
        }
    })
    .unwrap();
    assert!(r.iterations.count >= 5, "{}", r.iterations.count);
    assert_eq!(
        r.iterations.errors.total(),
        0,
        "{:?}",
        r.iterations.error_samples
    );
    seen.lock().unwrap().clear();

    // HTTP/2, agreed by ALPN, with the same CA.
    std::env::set_var(env::HTTP2, "1");
    let r = run(&url);
    std::env::remove_var(env::HTTP2);
    assert!(r.iterations.count >= 10, "{}", r.iterations.count);
    assert_eq!(
        r.iterations.errors.total(),
        0,
        "{:?}",
        r.iterations.error_samples
    );
    let requests = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        requests.iter().all(|(_, v)| v == "HTTP/2.0"),
        "{requests:?}"
    );

    // Without the CA the certificate does not verify: every request is a connect error that says so,
    // and the server saw none of them.
    std::env::remove_var(env::CA_CERT);
    let r = run(&url);
    assert!(r.iterations.count >= 10, "{}", r.iterations.count);
    assert_eq!(r.iterations.errors.connect, r.iterations.count);
    let sample = &r.iterations.error_samples[0];
    assert!(
        sample.contains("does not verify") && sample.contains("--ca-cert"),
        "{sample}"
    );
    assert!(seen.lock().unwrap().is_empty());
    // The same through hyper's client to another host.
    let absolute = format!("{url}/other");
    let r = run_scenario(&closed(1, 300), "http://127.0.0.1:9", move |ctx: Ctx| {
        let absolute = absolute.clone();
        async move {
            ctx.get(absolute).send().await?;
            Ok(())
        }
    })
    .unwrap();
    assert_eq!(r.iterations.errors.connect, r.iterations.count);
    let sample = &r.iterations.error_samples[0];
    assert!(sample.contains("--ca-cert"), "{sample}");

    // A CA file that is not one is a setup error before any load.
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "junk").unwrap();
    std::env::set_var(env::CA_CERT, &junk);
    let e = run_scenario(&closed(1, 100), &url, |_ctx: Ctx| async { Ok(()) }).unwrap_err();
    std::env::remove_var(env::CA_CERT);
    assert!(e.contains("no PEM certificate"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("perfgate-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
