//! The load engine against in-process servers on loopback. Every run is short and bounded.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ok_server, open, refused_url, serial, serve, spec};
use perfgate_runtime::__private::run_scenario;
use perfgate_runtime::format::{self, LoadModel, ScenarioResult, Stage};
use perfgate_runtime::{Ctx, Error};

fn in_range(what: &str, v: u64, lo: u64, hi: u64) {
    assert!((lo..=hi).contains(&v), "{what} = {v}, expected {lo}..={hi}");
}

#[test]
fn open_model_keeps_its_rate_and_records_both_latencies() {
    let _serial = serial();
    let url = ok_server();
    let r = run_scenario(&open(200.0, 1000), &url, |ctx: Ctx| async move {
        ctx.get(format!("/items/{}", ctx.iteration()))
            .send()
            .await?
            .expect_status(200)?;
        Ok(())
    })
    .unwrap();
    in_range("iterations", r.iterations.count, 180, 202);
    in_range("intended", r.schedule.intended, 199, 201);
    assert_eq!(
        r.iterations.errors.total(),
        0,
        "{:?}",
        r.iterations.error_samples
    );
    assert!(
        (r.iterations.throughput - r.iterations.count as f64).abs() < 1e-9,
        "1 s window"
    );
    let (c, u) = (&r.iterations.latency, &r.iterations.latency_uncorrected);
    assert_eq!(c.count, r.iterations.count);
    assert!(
        c.p50_ms >= u.p50_ms && c.max_ms >= u.max_ms && c.mean_ms >= u.mean_ms,
        "{c:?} {u:?}"
    );
    assert_eq!(r.schedule.lag.count, r.iterations.count);
    // The default name is the path template.
    let items = &r.requests["GET /items/{id}"];
    assert_eq!(items.count, r.iterations.count);
    assert_eq!(r.requests.len(), 1, "{:?}", r.requests.keys());
    // Histograms decode to what the summaries say.
    let h = format::decode_histogram(&r.iterations.histogram).unwrap();
    assert_eq!(h.len(), r.iterations.count);
    assert_eq!(r.timeseries.len(), 1);
    assert_eq!(r.timeseries[0].iterations, r.iterations.count);
    assert!(r.timeseries[0].p99_ms > 0.0);
    assert_eq!(r.schema_version, format::SCHEMA_VERSION);
    eprintln!(
        "lag {:?}, late {}, invalid {:?}",
        r.schedule.lag, r.schedule.late, r.invalid
    );
}

#[test]
fn warmup_is_excluded_from_the_results() {
    let _serial = serial();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let url = serve(move |_req| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { (200, String::new()) }
    });
    let mut s = open(200.0, 500);
    s.warmup_ms = 500;
    let first_measured = Arc::new(AtomicU64::new(u64::MAX));
    let first = first_measured.clone();
    let r = run_scenario(&s, &url, move |ctx: Ctx| {
        let first = first.clone();
        async move {
            ctx.get("/").send().await?;
            if ctx.iteration() >= 100 {
                first.fetch_min(ctx.iteration(), Ordering::Relaxed);
            }
            Ok(())
        }
    })
    .unwrap();
    in_range("server requests", seen.load(Ordering::Relaxed), 190, 201);
    in_range("measured iterations", r.iterations.count, 90, 101);
    in_range("intended", r.schedule.intended, 99, 101);
    assert_eq!(r.requests["GET /"].count, r.iterations.count);
    assert_eq!(r.measured_secs, 0.5);
}

#[test]
fn status_errors_are_counted_by_kind_on_the_iteration_and_the_request() {
    let _serial = serial();
    let url = serve(|req| async move {
        if req.path == "/fail" {
            (500, "boom".to_owned())
        } else {
            (200, "ok".to_owned())
        }
    });
    let r = run_scenario(&open(100.0, 500), &url, |ctx: Ctx| async move {
        ctx.get("/ok").send().await?.expect_status(200)?;
        ctx.get("/fail").send().await?.expect_status(200)?;
        Ok(())
    })
    .unwrap();
    let n = r.iterations.count;
    assert!(n >= 40, "{n}");
    assert_eq!(r.iterations.errors.status, n);
    assert_eq!(r.iterations.errors.total(), n);
    assert_eq!(r.iterations.error_rate(), 1.0);
    let fail = &r.requests["GET /fail"];
    assert_eq!((fail.count, fail.errors.status), (n, n));
    assert_eq!(r.requests["GET /ok"].errors.total(), 0);
    assert!(!r.iterations.error_samples.is_empty() && r.iterations.error_samples.len() <= 5);
    assert!(
        r.iterations.error_samples[0].contains("expected status 200, got 500 (boom)"),
        "{:?}",
        r.iterations.error_samples
    );
}

#[test]
fn refused_connections_are_connect_errors() {
    let _serial = serial();
    let r = run_scenario(&open(50.0, 400), &refused_url(), |ctx: Ctx| async move {
        ctx.get("/").send().await?;
        Ok(())
    })
    .unwrap();
    let n = r.iterations.count;
    assert!(n >= 15, "{n}");
    assert_eq!(
        r.iterations.errors.connect, n,
        "{:?}",
        r.iterations.error_samples
    );
    assert_eq!(r.requests["GET /"].errors.connect, n);
    assert!(
        r.iterations.error_samples[0].starts_with("connect: GET http://127.0.0.1:"),
        "{:?}",
        r.iterations.error_samples
    );
}

#[test]
fn a_panicking_iteration_is_counted_and_the_run_goes_on() {
    let _serial = serial();
    let url = ok_server();
    let r = run_scenario(&open(100.0, 500), &url, |ctx: Ctx| async move {
        ctx.get("/").send().await?;
        if ctx.iteration() % 2 == 0 {
            panic!("odd thing at {}", ctx.iteration());
        }
        Ok(())
    })
    .unwrap();
    let n = r.iterations.count;
    assert!(n >= 45, "{n}");
    in_range("panics", r.iterations.errors.panic, n / 2 - 1, n / 2 + 1);
    assert_eq!(r.iterations.errors.total(), r.iterations.errors.panic);
    assert!(
        r.iterations.error_samples[0].contains("panicked: odd thing at"),
        "{:?}",
        r.iterations.error_samples
    );
    // The request itself succeeded every time.
    assert_eq!(r.requests["GET /"].errors.total(), 0);
}

#[test]
fn named_requests_and_timed_steps_get_their_own_series() {
    let _serial = serial();
    let url = serve(|req| async move {
        (
            if req.path == "/cart" { 201 } else { 200 },
            "{\"id\": 7}".to_owned(),
        )
    });
    #[derive(serde::Deserialize)]
    struct Created {
        id: u64,
    }
    let r = run_scenario(&open(50.0, 500), &url, |ctx: Ctx| async move {
        let cart: Created = ctx
            .post("/cart")
            .json(&[1, 2])
            .send()
            .await?
            .expect_status(201)?
            .json()?;
        ctx.post(format!("/cart/{}/pay", cart.id))
            .name("pay")
            .send()
            .await?
            .expect_status(200)?;
        ctx.time("think", tokio::time::sleep(Duration::from_millis(3)))
            .await;
        // A step's own error is the scenario's to propagate; the time still counts.
        let r: Result<(), Error> = ctx.time("fails", async { Err(Error::check("nope")) }).await;
        assert!(r.is_err());
        Ok(())
    })
    .unwrap();
    let n = r.iterations.count;
    assert!(n >= 20, "{n}");
    let names: Vec<_> = r.requests.keys().map(String::as_str).collect();
    assert_eq!(names, ["POST /cart", "fails", "pay", "think"]);
    assert!(r
        .requests
        .values()
        .all(|s| s.count == n && s.errors.total() == 0));
    assert!(
        r.requests["think"].latency.p50_ms >= 3.0,
        "{:?}",
        r.requests["think"].latency
    );
    assert_eq!(
        r.requests["pay"].latency,
        r.requests["pay"].latency_uncorrected
    );
    assert_eq!(
        r.iterations.errors.total(),
        0,
        "{:?}",
        r.iterations.error_samples
    );
}

#[test]
fn the_client_sends_only_what_the_scenario_asks_for() {
    let _serial = serial();
    let url = serve(|req| async move {
        let mut headers: BTreeMap<String, String> = req.headers.into_iter().collect();
        headers.insert(":method".into(), req.method);
        headers.insert(
            ":body".into(),
            String::from_utf8_lossy(&req.body).into_owned(),
        );
        (200, serde_json::to_string(&headers).unwrap())
    });
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let r = run_scenario(&open(20.0, 200), &url, move |ctx: Ctx| {
        let sink = sink.clone();
        async move {
            let get: BTreeMap<String, String> = ctx.get("/a?x=1").send().await?.json()?;
            let post: BTreeMap<String, String> = ctx
                .put("/b")
                .header("x-trace", "1")
                .json(&serde_json::json!({"k": 1}))
                .send()
                .await?
                .json()?;
            let text = ctx.delete("/c").body("raw").send().await?.text()?;
            sink.lock().unwrap().push((get, post, text));
            Ok(())
        }
    })
    .unwrap();
    assert_eq!(
        r.iterations.errors.total(),
        0,
        "{:?}",
        r.iterations.error_samples
    );
    let seen = seen.lock().unwrap();
    let (get, put, delete) = &seen[0];
    let keys = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(get), [":body", ":method", "host", "user-agent"]);
    assert_eq!(
        get["user-agent"],
        format!("perfgate/{}", format::PERFGATE_VERSION)
    );
    assert_eq!(
        keys(put),
        [
            ":body",
            ":method",
            "content-length",
            "content-type",
            "host",
            "user-agent",
            "x-trace"
        ]
    );
    assert_eq!(
        (put[":method"].as_str(), put[":body"].as_str()),
        ("PUT", "{\"k\":1}")
    );
    assert_eq!(put["content-type"], "application/json");
    let delete: BTreeMap<String, String> = serde_json::from_str(delete).unwrap();
    assert_eq!(
        (delete[":method"].as_str(), delete[":body"].as_str()),
        ("DELETE", "raw")
    );
    assert!(r.requests.contains_key("GET /a") && r.requests.contains_key("PUT /b"));
}

/// A service that freezes for `STALL` while starts keep coming at `RATE` (the benchmark runs the
/// 10 s version: a 1 s stall at 1,000/s, truth ≈ 900 ms). Analytic truth: a start intended at `t`
/// inside the stall `[s, s + STALL)` completes when it ends, so its corrected latency is `s + STALL − t`,
/// uniform over (0, STALL]; every other start is fast. Of the `N = RATE · WINDOW` starts, those slower
/// than `x` number `RATE · (STALL − x)`; the p99 is the `x` exceeded by `N / 100` of them:
/// `x = STALL − WINDOW / 100`. Here 400 ms − 20 ms = 380 ms.
///
/// With 8 slots (8 connections of a closed-loop tool), only the 8 requests in flight when the stall
/// began saw it from their actual send: the uncorrected p99 misses it, which is coordinated omission.
#[test]
fn a_stall_shows_in_the_corrected_latency_as_the_analytic_truth() {
    const RATE: f64 = 500.0;
    const WINDOW: Duration = Duration::from_secs(2);
    const STALL_AFTER: Duration = Duration::from_millis(800);
    const STALL: Duration = Duration::from_millis(400);
    let truth_ms = (STALL.as_secs_f64() - WINDOW.as_secs_f64() / 100.0) * 1000.0;
    let _serial = serial();
    let first = Arc::new(std::sync::OnceLock::<Instant>::new());
    let url = serve(move |_req| {
        let first = *first.get_or_init(Instant::now);
        async move {
            let (from, to) = (first + STALL_AFTER, first + STALL_AFTER + STALL);
            let now = Instant::now();
            if now >= from && now < to {
                tokio::time::sleep_until(to.into()).await;
            }
            (200, String::new())
        }
    });
    let mut s = open(RATE, WINDOW.as_millis() as u64);
    s.max_in_flight = Some(8);
    let r = run_scenario(&s, &url, |ctx: Ctx| async move {
        ctx.get("/").send().await?.expect_status(200)?;
        Ok(())
    })
    .unwrap();
    let (c, u) = (&r.iterations.latency, &r.iterations.latency_uncorrected);
    eprintln!(
        "truth p99 {truth_ms} ms\ncorrected {c:?}\nuncorrected {u:?}\nschedule {:?}\ninvalid {:?}",
        r.schedule, r.invalid
    );
    assert_eq!(r.iterations.errors.total(), 0);
    assert!(r.iterations.count >= 900, "{}", r.iterations.count);
    // Generous bounds for a loaded 2-core machine (the benchmark holds the real one to 5%): queueing
    // behind the backlog after the stall only adds, and physics bounds it below.
    assert!(
        c.p99_ms > 0.85 * truth_ms && c.p99_ms < 1.3 * truth_ms,
        "corrected p99 {} vs truth {truth_ms}",
        c.p99_ms
    );
    assert!(c.max_ms >= 0.9 * STALL.as_millis() as f64, "{}", c.max_ms);
    assert!(u.p99_ms < c.p99_ms / 3.0, "uncorrected p99 {}", u.p99_ms);
    assert!(u.max_ms > 0.5 * STALL.as_millis() as f64, "{}", u.max_ms);
    // The queued starts were late because of the bound, and the run says so.
    assert!(r.schedule.late > 100, "{:?}", r.schedule);
    let invalid = r.invalid.as_deref().unwrap_or_default();
    assert!(invalid.contains("max_in_flight = 8 reached"), "{invalid}");
    // The per-second series shows the stall in its second.
    let worst = r
        .timeseries
        .iter()
        .max_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms))
        .unwrap();
    assert!(worst.p99_ms > 200.0 && worst.t <= 1, "{:?}", r.timeseries);
}

/// The schedule is kept: at 1,000/s against a fast service nearly every start happens, on time.
#[test]
fn the_open_model_achieves_its_rate() {
    let _serial = serial();
    let url = ok_server();
    let r = run_scenario(&open(1000.0, 1000), &url, |ctx: Ctx| async move {
        ctx.get("/").send().await?.expect_status(200)?;
        Ok(())
    })
    .unwrap();
    eprintln!(
        "rate {} lag {:?} c {:?} u {:?}",
        r.iterations.throughput,
        r.schedule.lag,
        r.iterations.latency,
        r.iterations.latency_uncorrected
    );
    in_range("intended", r.schedule.intended, 999, 1001);
    // Within 3% (the benchmark holds 1% on a quiet machine); the rest finished after the window.
    assert!(
        r.iterations.throughput >= 970.0,
        "{}",
        r.iterations.throughput
    );
    assert_eq!(
        r.iterations.errors.total(),
        0,
        "{:?}",
        r.iterations.error_samples
    );
    // Only a start due in the last instant of the window can miss it.
    assert!(r.schedule.dropped <= 5, "{:?}", r.schedule);
    // Starts are on time to well under the late threshold at the median.
    assert!(r.schedule.lag.p50_ms < 5.0, "{:?}", r.schedule.lag);
}

/// A service slower than the rate: with a bounded number of slots, starts wait, and are reported
/// late (and the run invalid) instead of being silently sent later.
#[test]
fn a_service_slower_than_the_rate_gives_late_starts() {
    let _serial = serial();
    // One request at a time, 5 ms each: 200/s at most, against 400/s asked.
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    let url = serve(move |_req| {
        let lock = one_at_a_time.clone();
        async move {
            let _held = lock.lock().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            (200, String::new())
        }
    });
    let mut s = open(400.0, 1000);
    s.max_in_flight = Some(4);
    let r = run_scenario(&s, &url, |ctx: Ctx| async move {
        ctx.get("/").send().await?;
        Ok(())
    })
    .unwrap();
    eprintln!("{:?}\n{:?}", r.schedule, r.invalid);
    assert!(r.iterations.count < 300, "{}", r.iterations.count);
    assert!(r.schedule.late > 50, "{:?}", r.schedule);
    assert_eq!(
        r.iterations.count + r.schedule.dropped,
        r.schedule.intended,
        "{:?}",
        r.schedule
    );
    let invalid = r.invalid.expect("invalid");
    assert!(
        invalid.contains("late waiting for a free slot (max_in_flight = 4 reached)"),
        "{invalid}"
    );
    assert!(r.iterations.latency.p99_ms > 5.0 * r.iterations.latency_uncorrected.p50_ms);
}

#[test]
fn closed_model_with_think_time_bounds_the_rate() {
    let _serial = serial();
    let url = ok_server();
    let s = spec(
        LoadModel::Closed {
            users: 2,
            think_ms: 50,
        },
        1000,
    );
    let users_seen = Arc::new(std::sync::Mutex::new(BTreeMap::<u64, u64>::new()));
    let seen = users_seen.clone();
    let r = run_scenario(&s, &url, move |ctx: Ctx| {
        let seen = seen.clone();
        async move {
            ctx.get("/").send().await?;
            // Per-user state persists across that user's iterations.
            let n = ctx.with_state(|count: &mut u64| {
                *count += 1;
                *count
            });
            seen.lock().unwrap().insert(ctx.user(), n);
            Ok(())
        }
    })
    .unwrap();
    // Two users, each at most one iteration per 50 ms.
    in_range("iterations", r.iterations.count, 24, 42);
    assert_eq!(r.iterations.latency, r.iterations.latency_uncorrected);
    assert_eq!((r.schedule.late, r.schedule.dropped), (0, 0));
    assert_eq!(r.schedule.intended, r.iterations.count);
    assert!(r.invalid.is_none(), "{:?}", r.invalid);
    let seen = users_seen.lock().unwrap();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(seen.values().sum::<u64>(), r.iterations.count);
}

#[test]
fn slow_responses_are_timeouts() {
    let _serial = serial();
    let url = serve(|_req| async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        (200, String::new())
    });
    let mut s = open(20.0, 500);
    s.timeout_ms = 100;
    let r = run_scenario(&s, &url, |ctx: Ctx| async move {
        ctx.get("/slow").send().await?;
        Ok(())
    })
    .unwrap();
    let n = r.iterations.count;
    assert!(n >= 8, "{n}");
    assert_eq!(
        r.iterations.errors.timeout, n,
        "{:?}",
        r.iterations.error_samples
    );
    assert!(
        r.iterations.latency.p50_ms >= 100.0 && r.iterations.latency.max_ms < 300.0,
        "{:?}",
        r.iterations.latency
    );
}

/// Iterations still running when the window ends get the timeout to finish, then are cancelled and
/// counted as timeouts: the run never waits for them.
#[test]
fn the_run_ends_on_time_whatever_the_iterations_do() {
    let _serial = serial();
    let url = ok_server();
    let mut s = open(10.0, 300);
    s.timeout_ms = 200;
    let started = Instant::now();
    let r = run_scenario(&s, &url, |ctx: Ctx| async move {
        ctx.time("nap", tokio::time::sleep(Duration::from_secs(30)))
            .await;
        Ok(())
    })
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    in_range("iterations", r.iterations.count, 2, 3);
    assert_eq!(r.iterations.errors.timeout, r.iterations.count);
    assert!(
        r.iterations.latency.min_ms >= 200.0,
        "{:?}",
        r.iterations.latency
    );
    assert!(!r.requests.contains_key("nap"));
}

/// A closed-model user whose iteration, started in the warm-up, never returns: no iteration finishes
/// in the window, and the run says that, not that none started.
#[test]
fn iterations_that_never_finish_are_named_as_such() {
    let _serial = serial();
    let url = ok_server();
    let mut s = spec(
        LoadModel::Closed {
            users: 1,
            think_ms: 0,
        },
        300,
    );
    s.warmup_ms = 100;
    s.timeout_ms = 200;
    let r = run_scenario(&s, &url, |_ctx: Ctx| async move {
        std::future::pending::<()>().await;
        Ok(())
    })
    .unwrap();
    assert_eq!(r.iterations.count, 0);
    let why = r
        .invalid
        .expect("a window without a finished iteration is invalid");
    assert!(
        why.contains("no iteration finished in the measured window")
            && why.contains("1 iteration started before it was still running")
            && !why.contains("no iteration started"),
        "{why}"
    );
}

/// With one slot and iterations slower than the schedule, starts that wait longer than the timeout
/// are dropped, and a run with more than 1% late or dropped starts is invalid.
#[test]
fn starts_without_a_free_slot_are_dropped_and_the_run_is_invalid() {
    let _serial = serial();
    let url = serve(|_req| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (200, String::new())
    });
    let mut s = open(100.0, 1000);
    s.max_in_flight = Some(1);
    s.timeout_ms = 50;
    let r: ScenarioResult = run_scenario(&s, &url, |ctx: Ctx| async move {
        ctx.get("/").send().await?;
        Ok(())
    })
    .unwrap();
    assert!(r.schedule.dropped > 50, "{:?}", r.schedule);
    assert_eq!(
        r.iterations.count + r.schedule.dropped,
        r.schedule.intended,
        "{:?}",
        r.schedule
    );
    let invalid = r.invalid.expect("invalid");
    assert!(invalid.contains("dropped"), "{invalid}");
}

#[test]
fn ramping_rate_integrates_over_the_stages() {
    let _serial = serial();
    let url = ok_server();
    // 0 → 200/s over 1 s: 100 iterations, most of them late in the second.
    let s = spec(
        LoadModel::Ramping {
            stages: vec![Stage {
                duration_ms: 1000,
                target_rate: 200.0,
            }],
        },
        1000,
    );
    let r = run_scenario(&s, &url, |ctx: Ctx| async move {
        ctx.get("/").send().await?;
        Ok(())
    })
    .unwrap();
    in_range("intended", r.schedule.intended, 99, 101);
    in_range("iterations", r.iterations.count, 90, 101);
}

#[test]
fn bad_specs_and_urls_are_setup_errors() {
    let f = |_ctx: Ctx| async { Ok(()) };
    assert!(run_scenario(&open(0.0, 100), "http://127.0.0.1:1", f)
        .unwrap_err()
        .contains("rate"));
    assert!(run_scenario(&open(10.0, 100), "not a url", f)
        .unwrap_err()
        .contains("invalid base URL"));
    assert!(run_scenario(&open(10.0, 100), "https://127.0.0.1:1", f)
        .unwrap_err()
        .contains("invalid base URL"));
    let closed = spec(
        LoadModel::Closed {
            users: 0,
            think_ms: 0,
        },
        100,
    );
    assert!(run_scenario(&closed, "http://127.0.0.1:1", f)
        .unwrap_err()
        .contains("users"));
}

/// `max_in_flight` holds whatever the rate, even when the rate would spread starts over several
/// worker threads.
#[test]
fn max_in_flight_holds_at_a_rate_that_uses_several_workers() {
    let _serial = serial();
    let url = ok_server();
    let (now, peak) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (now2, peak2) = (now.clone(), peak.clone());
    let mut s = open(20_000.0, 300);
    s.max_in_flight = Some(1);
    let r = run_scenario(&s, &url, move |ctx: Ctx| {
        let (now, peak) = (now2.clone(), peak2.clone());
        async move {
            peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            let sent = ctx.get("/").send().await;
            now.fetch_sub(1, Ordering::SeqCst);
            sent?;
            Ok(())
        }
    })
    .unwrap();
    assert!(r.iterations.count > 0);
    assert_eq!(peak.load(Ordering::SeqCst), 1);
    assert!(r.invalid.is_some());
}
