//! End to end: `cargo perfgate --target-url https://… --ca-cert` against a TLS server on 127.0.0.1
//! (threads of this test process, stopped when the test ends) with the `basic` fixture's scenarios.

mod common;

use std::sync::atomic::Ordering;

use common::{assert_no_leftovers, run, serial, Fixture, TlsServer};

/// Every scenario's iterations in the results document (`--message-format json` on stdout): its
/// count and error counts by kind, and its first error message.
fn iterations(stdout: &str) -> Vec<(String, serde_json::Value, String)> {
    let json: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("the results document does not parse ({e}):\n{stdout}"));
    json["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| {
            let it = &s["result"]["iterations"];
            (
                s["id"].as_str().unwrap_or_default().to_owned(),
                it.clone(),
                it["error_samples"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_https_target_is_driven_with_the_given_ca_and_refused_without_it() {
    let _turn = serial();
    let f = Fixture::new("basic", "tls");
    let server = TlsServer::start();
    let ca = f.root.join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let url = server.url();
    let short = [
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--message-format",
        "json",
    ];

    let mut args = vec!["--target-url", url.as_str(), "--ca-cert", "ca.pem"];
    args.extend(short);
    let out = run(&mut f.perfgate(&args));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let scenarios = iterations(&out.stdout);
    assert_eq!(scenarios.len(), 2, "{}", out.show());
    for (id, it, sample) in &scenarios {
        assert!(it["count"].as_u64().unwrap() > 0, "{id}: {it}");
        let errors: u64 = it["errors"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(errors, 0, "{id}: {sample}");
    }
    assert!(server.answered.load(Ordering::SeqCst) > 0);
    assert_eq!(server.refused.load(Ordering::SeqCst), 0);

    // Without the CA no certificate verifies: every iteration is a connect error that says why,
    // whatever verdict the run gets.
    let mut args = vec!["--target-url", url.as_str()];
    args.extend(short);
    let answered = server.answered.load(Ordering::SeqCst);
    let out = run(&mut f.perfgate(&args));
    let scenarios = iterations(&out.stdout);
    assert_eq!(scenarios.len(), 2, "{}", out.show());
    for (id, it, sample) in &scenarios {
        let count = it["count"].as_u64().unwrap();
        assert!(count > 0, "{id}: {it}");
        assert_eq!(it["errors"]["connect"].as_u64(), Some(count), "{id}: {it}");
        assert!(
            sample.contains("does not verify") && sample.contains("--ca-cert"),
            "{id}: {sample}"
        );
    }
    assert_eq!(server.answered.load(Ordering::SeqCst), answered);
    assert!(server.refused.load(Ordering::SeqCst) > 0);

    // A CA file that does not exist is bad input, said before anything is built.
    let out = run(&mut f.perfgate(&["--target-url", &url, "--ca-cert", "missing.pem"]));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("--ca-cert") && out.stderr.contains("does not exist"),
        "{}",
        out.show()
    );
    drop(server);
    assert_no_leftovers();
}

#[test]
fn an_https_webhook_is_posted_through_rustls_and_verified() {
    // The turn also keeps SSL_CERT_FILE, set here, from the other test's runs.
    let _turn = serial();
    const TOKEN: &str = "T0KEN-over-tls";
    let server = TlsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let url = format!("{}/hook/{TOKEN}", server.url());
    let body = serde_json::json!({"text": "perfgate failed"});

    // rustls-native-certs reads the system's roots from SSL_CERT_FILE when it is set.
    std::env::set_var("SSL_CERT_FILE", &ca);
    let sent = cargo_perfgate::report::notify::post(&url, &body);
    std::env::remove_var("SSL_CERT_FILE");
    sent.unwrap();
    assert_eq!(server.answered.load(Ordering::SeqCst), 1);

    let e = cargo_perfgate::report::notify::post(&url, &body)
        .unwrap_err()
        .to_string();
    assert!(e.contains("certificate") && !e.contains(TOKEN), "{e}");
    assert_eq!(server.answered.load(Ordering::SeqCst), 1);
}
