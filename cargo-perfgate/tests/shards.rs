//! Sharded load end to end, on loopback: two `cargo perfgate --shard i/2` processes drive one service,
//! meet at a barrier directory, and `cargo perfgate merge` combines their results into one run, or
//! refuses shards that are not one run with exit 2.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use common::{assert_no_leftovers, run, serial, Fixture, Running, RUN_TIMEOUT};

/// A service every shard drives: 200 `ok` to every request, keep-alive, one thread per connection.
/// It lives until the test process exits.
fn ok_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Bounded by the connection: it ends when the client closes it.
                loop {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    buf.drain(..end);
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn scenario<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["scenarios"]
        .as_array()
        .and_then(|v| v.iter().find(|s| s["result"]["spec"]["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

#[test]
fn two_shards_meet_drive_one_service_and_merge_into_one_run() {
    let _turn = serial();
    let f = Fixture::new("basic", "shards");
    let url = ok_server();
    let dir = tempfile::tempdir().unwrap();
    let barrier = dir.path().join("barrier");
    let shard_file = |i: u32| dir.path().join(format!("shard-{i}.json"));

    // Built once first: on one machine both shards share the checkout and the target dir, and two
    // rebuilds of a binary another fixture's checkout left there would race each other.
    let listed = run(&mut f.perfgate(&["list"]));
    assert_eq!(listed.code(), Some(0), "{}", listed.show());

    // Both shards at once, as an Indexed Job or a CI matrix would start them.
    let shards: Vec<Running> = (1..=2)
        .map(|i| {
            Running::spawn(&mut f.perfgate(&[
                "--shard",
                &format!("{i}/2"),
                "--target-url",
                &url,
                "--start-barrier",
                barrier.to_str().unwrap(),
                "--results-file",
                shard_file(i).to_str().unwrap(),
            ]))
        })
        .collect();
    for (i, shard) in shards.into_iter().enumerate() {
        let out = shard.wait(RUN_TIMEOUT);
        assert_eq!(out.code(), Some(0), "shard {}/2\n{}", i + 1, out.show());
        assert!(
            out.stderr.contains("the load starts at"),
            "the shard does not say when its load starts\n{}",
            out.show()
        );
        assert!(
            out.stdout
                .contains(&format!("shard {}/2: 1/2 of each scenario's load", i + 1)),
            "{}",
            out.show()
        );
    }
    let (one, two) = (json(&shard_file(1)), json(&shard_file(2)));
    assert_eq!(one["shard"], serde_json::json!({"index": 1, "count": 2}));
    for name in ["work", "health"] {
        let (a, b) = (
            &scenario(&one, name)["result"],
            &scenario(&two, name)["result"],
        );
        // The common window, to the millisecond.
        assert_eq!(a["started_unix_ms"], b["started_unix_ms"], "{name}");
        assert_eq!(a["shard"]["index"], 1);
        assert_eq!(b["shard"]["index"], 2);
    }
    // The open model: 50/s for 1 s in all, 25 starts each.
    for doc in [&one, &two] {
        let intended = scenario(doc, "health")["result"]["schedule"]["intended"]
            .as_u64()
            .unwrap();
        assert!((24..=26).contains(&intended), "{intended}");
    }

    let merged_path = dir.path().join("merged.json");
    let out = run(&mut f.perfgate(&[
        "merge",
        shard_file(1).to_str().unwrap(),
        shard_file(2).to_str().unwrap(),
        "-o",
        merged_path.to_str().unwrap(),
    ]));
    // On a busy machine a few of the open model's 50 starts may run late: the merge then says the
    // measurement is invalid (exit 3, naming the shards' late starts), which is never a pass or a fail.
    let busy = out.code() == Some(3) && out.stdout.contains("started more than 10 ms late");
    assert!(out.code() == Some(0) || busy, "{}", out.show());
    assert!(out.stdout.contains("merged 2 shards"), "{}", out.show());
    let merged = json(&merged_path);
    assert_eq!(merged["merged_from"].as_array().unwrap().len(), 2);
    assert_eq!(merged["exit_code"], if busy { 3 } else { 0 });
    for name in ["work", "health"] {
        let m = scenario(&merged, name);
        let count = |d: &serde_json::Value| d["result"]["iterations"]["count"].as_u64().unwrap();
        assert_eq!(
            count(m),
            count(scenario(&one, name)) + count(scenario(&two, name)),
            "{name}: the merged count is not the sum"
        );
        assert_eq!(m["shards"].as_array().unwrap().len(), 2, "{m}");
        // The SLOs are checked on the merge (the shards checked none).
        assert!(scenario(&one, name)["checks"]
            .as_array()
            .unwrap()
            .is_empty());
        assert!(!m["checks"].as_array().unwrap().is_empty(), "{m}");
        assert_eq!(m["verdict"], "pass", "{m}");
    }
    let intended = scenario(&merged, "health")["result"]["schedule"]["intended"]
        .as_u64()
        .unwrap();
    assert!((49..=51).contains(&intended), "{intended}");

    // A missing shard is an error, never a smaller run.
    let out = run(&mut f.perfgate(&["merge", shard_file(1).to_str().unwrap()]));
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr.contains("shard 2/2 is missing"),
        "{}",
        out.show()
    );

    // Shard 1 with an edited shard 2: the merge must refuse with exit 2.
    let odd_path = dir.path().join("odd.json");
    let merge_with_odd = |odd: serde_json::Value| {
        std::fs::write(&odd_path, odd.to_string()).unwrap();
        let out = run(&mut f.perfgate(&[
            "merge",
            shard_file(1).to_str().unwrap(),
            odd_path.to_str().unwrap(),
        ]));
        assert_eq!(out.code(), Some(2), "{}", out.show());
        out
    };

    // A shard of another commit is named.
    let mut odd = two.clone();
    odd["environment"]["git_commit"] = "0123456789abcdef0123".into();
    let out = merge_with_odd(odd);
    assert!(
        out.stderr.contains("shard 2/2")
            && out.stderr.contains("odd.json")
            && out.stderr.contains("0123456789ab"),
        "{}",
        out.show()
    );

    // A shard whose window did not overlap the other's is named too.
    let mut late = two.clone();
    for s in late["scenarios"].as_array_mut().unwrap() {
        let t = s["result"]["started_unix_ms"].as_u64().unwrap();
        s["result"]["started_unix_ms"] = (t + 5_000).into();
    }
    let out = merge_with_odd(late);
    assert!(
        out.stderr.contains("do not overlap") && out.stderr.contains("odd.json) started +5.000 s"),
        "{}",
        out.show()
    );
    assert_no_leftovers();
}
