//! End to end: services with dependencies perfgate owns. `examples/shop-service` (axum on PostgreSQL)
//! copied as a workspace of its own: PostgreSQL started in a temp dir, seeded, reset between scenarios
//! and stopped with nothing left; its N+1 switch failing checkout against a baseline recorded without
//! it; `--ab` on a branch that introduces the N+1 loop failing, each side on a database of its own.
//! Dependencies that never get ready or whose setup fails are exit 2 with their log tail (on the
//! `basic` fixture, with a shell for a database: no PostgreSQL needed).
//!
//! The PostgreSQL tests skip, saying so, where PostgreSQL's server binaries are not installed
//! (`.ci/run` installs Debian's `postgresql` when it can).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{
    assert_no_leftovers, git, our_processes, processes_in, run, serial, Fixture, Output, Running,
};

/// Short windows: the tests check the lifecycle and the verdicts, not the figures.
const WINDOW: [&str; 4] = ["--duration", "2s", "--warmup", "500ms"];

/// Why PostgreSQL cannot run here, or None when the example's script will find everything it needs.
fn postgres_missing() -> Option<String> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    let server = on_path("initdb")
        || std::fs::read_dir("/usr/lib/postgresql")
            .map(|rd| rd.flatten().any(|v| v.path().join("bin/initdb").is_file()))
            .unwrap_or(false);
    let mut missing = Vec::new();
    if !server {
        missing.push("the server (initdb, postgres)");
    }
    for tool in ["psql", "pg_isready"] {
        if !on_path(tool) {
            missing.push(tool);
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 && !on_path("setpriv") {
        missing.push("setpriv (to run PostgreSQL as the postgres user)");
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

macro_rules! require_postgres {
    () => {
        if let Some(missing) = postgres_missing() {
            eprintln!(
                "skipping: PostgreSQL is not installed here (missing {missing}); `.ci/run` installs it with \
                 `apt-get install postgresql`"
            );
            return;
        }
    };
}

/// The shop example, copied once, a git repository on `main`.
fn shop() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let f = Fixture::example("shop-service", "shop");
        f.git_init();
        f
    })
}

/// A directory for the run's temporary files (`{dir}` of the database is made in it), open to the
/// `postgres` user the example's script runs the server as.
fn tmpdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("perfgate-deps-e2e-")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Nothing of a run outlived it: no process of ours, no process working in its temp dir (PostgreSQL's
/// workers rewrite their environment but run in their data directory), no temporary cluster.
fn assert_nothing_left(tmp: &Path, out: &Output) {
    assert_no_leftovers();
    // A process being killed gets a second to go.
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut procs = processes_in(tmp);
    while !procs.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        procs = processes_in(tmp);
    }
    assert!(
        procs.is_empty(),
        "processes outlived the run in {}: {:?}\n{}",
        tmp.display(),
        procs
            .iter()
            .map(|p| format!("{} {}", p.pid, p.cmdline))
            .collect::<Vec<_>>(),
        out.show()
    );
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the run left {left:?} in {}\n{}",
        tmp.display(),
        out.show()
    );
}

fn results(out: &Output) -> (PathBuf, serde_json::Value) {
    let path = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no results line\n{}", out.show()));
    let path = PathBuf::from(path.trim());
    let json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, json)
}

/// The figures a status line reports, e.g. `Ready dependency `db` at … in 1.23s, set up (3 steps) in 0.80s`.
fn seconds_after(line: &str, marker: &str) -> Option<f64> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split('s').next()?.trim().parse().ok()
}

#[test]
fn shop_service_seeds_its_own_postgres_resets_it_per_scenario_and_leaves_nothing() {
    require_postgres!();
    let _turn = serial();
    let f = shop();
    let tmp = tmpdir();
    let out = run(f.perfgate(&WINDOW).env("TMPDIR", tmp.path()));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let all = out.all();
    for s in ["browse_category", "search", "checkout"] {
        assert!(
            all.contains(&format!("shop-service::{s}")),
            "{s} is missing\n{all}"
        );
    }
    let ready = all
        .lines()
        .find(|l| l.contains("Ready") && l.contains("dependency `db`"))
        .unwrap_or_else(|| panic!("no ready line\n{all}"));
    let resets: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("Reset") && l.contains("dependency `db`"))
        .collect();
    // Three scenarios: the first uses the seed as set up, the other two a restored copy.
    assert_eq!(resets.len(), 2, "{all}");
    assert!(
        resets.iter().all(|l| l.contains("restored (1 step)")),
        "{all}"
    );
    eprintln!(
        "figures: database started in {:?}s, seeded in {:?}s; restores {:?}",
        seconds_after(ready, " in "),
        seconds_after(ready, "set up (3 steps) in "),
        resets
            .iter()
            .map(|l| seconds_after(l, "step) in "))
            .collect::<Vec<_>>()
    );

    let (path, json) = results(&out);
    let run_dir = path.parent().unwrap();
    // The seed and the schema, and the dependency's declaration, are in every scenario's spec.
    for s in json["scenarios"].as_array().unwrap() {
        let parts = &s["spec_parts"];
        for key in [
            "data data/seed.sql",
            "data data/schema.sql",
            "data scripts/postgres.sh",
            "dep db",
        ] {
            assert!(
                parts.get(key).is_some(),
                "{key} not in {}: {parts}",
                s["id"]
            );
        }
    }
    // Its logs are in the run directory; each service process saw only its own orders.
    let db_log = std::fs::read_to_string(run_dir.join("db.log")).unwrap();
    assert!(
        db_log.contains("perfgate: starting dependency `db` on 127.0.0.1:"),
        "{db_log}"
    );
    assert!(run_dir.join("db.setup.log").is_file());
    let svc_log = std::fs::read_to_string(run_dir.join("shop-service.log")).unwrap();
    let stops = stop_lines(&svc_log);
    assert_eq!(
        stops.len(),
        3,
        "one service per scenario (restarted with each reset):\n{svc_log}"
    );
    assert!(
        stops.iter().all(|(served, gained)| served == gained),
        "{svc_log}"
    );
    assert!(
        stops.iter().any(|(served, _)| *served > 0),
        "checkout placed no order:\n{svc_log}"
    );
    assert_nothing_left(tmp.path(), &out);
}

/// The N+1 switch against a baseline recorded with batched queries: a relative change, so it fails
/// on any machine. (Whether it also breaks checkout's absolute 8 ms SLO depends on how fast and idle
/// the machine is: on an idle 2-core VM the N+1 p50 came out 6.9–9.1 ms.)
#[test]
fn the_n_plus_one_switch_fails_checkout_against_its_baseline_and_names_it() {
    require_postgres!();
    let _turn = serial();
    let f = shop();
    let _back = BackToMain(f);
    let tmp = tmpdir();
    git(
        &f.root,
        &["checkout", "-q", "-B", "batched-baseline", "main"],
    );
    let mut record = vec!["record", "checkout", "--rounds", "3"];
    record.extend(WINDOW);
    let out = run(f.perfgate(&record).env("TMPDIR", tmp.path()));
    assert_eq!(out.code(), Some(0), "{}", out.show());
    git(&f.root, &["add", "perfgate.baseline.toml"]);
    git(&f.root, &["commit", "-q", "-m", "perfgate baseline"]);

    // The contention screen is the file gate's own business (tests/gate.rs); here a round the host
    // disturbed must not turn a threefold change into "inconclusive".
    let mut args = vec![
        "checkout",
        "--rounds",
        "3",
        "--baseline-rev",
        "HEAD",
        "--ignore-contention",
    ];
    args.extend(WINDOW);
    let out = run(f
        .perfgate(&args)
        .env("TMPDIR", tmp.path())
        .env("SHOP_LINE_QUERIES", "per-line"));
    assert_eq!(out.code(), Some(1), "{}", out.show());
    let all = out.all();
    let regressed = all
        .lines()
        .find(|l| {
            l.contains("shop-service::checkout") && l.contains("p50") && l.contains("REGRESSED")
        })
        .unwrap_or_else(|| panic!("no p50 regression of checkout\n{}", out.show()));
    eprintln!("figures: {}", regressed.trim());
    let (path, _) = results(&out);
    let log = std::fs::read_to_string(path.parent().unwrap().join("shop-service.log")).unwrap();
    assert!(log.contains("checkout line queries: per-line"), "{log}");
    assert_nothing_left(tmp.path(), &out);
}

/// `(checkouts served, orders the database gained)` of each stopped service in a log.
fn stop_lines(log: &str) -> Vec<(u64, u64)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("shop-service stopped: ")?;
            let (served, rest) = rest.split_once(" checkouts served; the database gained ")?;
            let gained = rest.strip_suffix(" orders")?;
            Some((served.parse().ok()?, gained.parse().ok()?))
        })
        .collect()
}

/// The database ports a service log's processes connected to.
fn db_ports(log: &str) -> BTreeSet<u16> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split_once("(database 127.0.0.1:")?.1;
            rest.split('/').next()?.parse().ok()
        })
        .collect()
}

/// Puts the fixture back on `main`, whatever the test did.
struct BackToMain<'a>(&'a Fixture);

impl Drop for BackToMain<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("git")
            .args(["checkout", "-q", "-f", "main"])
            .current_dir(&self.0.root)
            .status();
    }
}

#[test]
fn ab_fails_a_branch_that_introduces_the_n_plus_one_loop_each_side_on_its_own_database() {
    require_postgres!();
    let _turn = serial();
    let f = shop();
    let _back = BackToMain(f);
    let tmp = tmpdir();
    git(&f.root, &["checkout", "-q", "-B", "n-plus-one", "main"]);
    let code = f.root.join("src/checkout.rs");
    let text = std::fs::read_to_string(&code).unwrap();
    let from = "pub const DEFAULT_LINE_QUERIES: LineQueries = LineQueries::Batched;";
    assert!(
        text.contains(from),
        "the example lost its regression switch"
    );
    std::fs::write(
        &code,
        text.replace(from, &from.replace("Batched", "PerLine")),
    )
    .unwrap();
    git(
        &f.root,
        &["commit", "-q", "-am", "checkout: one query per line"],
    );

    let mut args = vec!["--ab", "checkout", "--budget", "120s"];
    args.extend(WINDOW);
    let out = run(f.perfgate(&args).env("TMPDIR", tmp.path()));
    assert_eq!(out.code(), Some(1), "{}", out.show());
    assert!(out.all().contains("REGRESSED"), "{}", out.show());

    let (path, _) = results(&out);
    let run_dir = path.parent().unwrap();
    let head_log = std::fs::read_to_string(run_dir.join("shop-service.log")).unwrap();
    let base_log = std::fs::read_to_string(run_dir.join("base/shop-service.log")).unwrap();
    assert!(
        head_log.contains("checkout line queries: per-line"),
        "{head_log}"
    );
    assert!(
        base_log.contains("checkout line queries: batched"),
        "{base_log}"
    );
    // Separate databases: different servers, and every service process found exactly its own orders
    // in its database (a shared one would hold the other side's too).
    let (head_ports, base_ports) = (db_ports(&head_log), db_ports(&base_log));
    assert!(
        !head_ports.is_empty() && !base_ports.is_empty(),
        "{head_log}\n{base_log}"
    );
    assert!(
        head_ports.is_disjoint(&base_ports),
        "{head_ports:?} {base_ports:?}"
    );
    for log in [&head_log, &base_log] {
        let stops = stop_lines(log);
        assert!(
            !stops.is_empty() && stops.iter().all(|(s, g)| s == g && *s > 0),
            "{log}"
        );
    }
    let head_db = std::fs::read_to_string(run_dir.join("db.log")).unwrap();
    let base_db = std::fs::read_to_string(run_dir.join("base/db.log")).unwrap();
    let dir_of = |log: &str| {
        log.lines()
            .find_map(|l| {
                l.split_once(", directory ")
                    .map(|(_, r)| r.split(':').next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("no directory in {log}"))
    };
    assert_ne!(dir_of(&head_db), dir_of(&base_db));
    assert_nothing_left(tmp.path(), &out);
}

/// The basic fixture's manifest with a shell for a database declared after its service.
fn with_dep(f: &Fixture, original: &str, dep: &str) {
    std::fs::write(
        f.manifest(),
        format!("{original}\n[package.metadata.perfgate.deps.db]\n{dep}\n"),
    )
    .unwrap();
}

#[test]
fn a_dependency_that_never_gets_ready_or_fails_its_setup_is_exit_2_with_its_log_tail() {
    let _turn = serial();
    let tmp = tmpdir();
    let f = Fixture::new("basic", "deps-fail");
    let original = std::fs::read_to_string(f.manifest()).unwrap();
    let cases = [
        (
            r#"command = "sh -c 'echo recovering the write-ahead log on {port}; exec sleep 60'"
ready = { command = "false" }
startup_timeout = "1s""#,
            [
                "dependency `db` did not start: it never became ready",
                "`false` did not exit 0",
                "recovering the write-ahead log on",
            ],
        ),
        (
            r#"command = "sh -c 'exec sleep 60'"
ready = { command = "true" }
setup = ["sh -c 'echo ERROR: could not open file data/seed.sql >&2; exit 3'"]"#,
            [
                "dependency `db` did not start: its setup step 1 of 1",
                "exited with status 3",
                "ERROR: could not open file data/seed.sql",
            ],
        ),
    ];
    for (dep, expected) in cases {
        with_dep(&f, &original, dep);
        let out = run(f
            .perfgate(&["health", "--duration", "1s"])
            .env("TMPDIR", tmp.path()));
        assert_eq!(out.code(), Some(2), "{}", out.show());
        let all = out.all();
        for e in expected {
            assert!(all.contains(e), "`{e}` is missing\n{}", out.show());
        }
        assert_nothing_left(tmp.path(), &out);
    }
}

#[test]
fn ctrl_c_stops_a_dependency_and_the_workers_that_left_its_group() {
    let _turn = serial();
    let tmp = tmpdir();
    let f = Fixture::new("basic", "deps-ctrl-c");
    let original = std::fs::read_to_string(f.manifest()).unwrap();
    // Like PostgreSQL: a worker in a session of its own (out of reach of the group's signals) that
    // ignores SIGTERM, working in the dependency's directory.
    with_dep(
        &f,
        &original,
        r#"command = ["sh", "-c", "cd {dir}; setsid sh -c 'trap \"\" TERM; while :; do sleep 0.2; done' & exec sleep 60"]
ready = { command = "true" }"#,
    );
    let mut running = Running::spawn(
        f.perfgate(&["health", "--duration", "30s"])
            .env("TMPDIR", tmp.path()),
    );
    let deadline = Instant::now() + common::RUN_TIMEOUT;
    while !our_processes()
        .iter()
        .any(|p| p.environ.iter().any(|v| v == "PERFGATE_MODE=run"))
    {
        if let Some(status) = running.child.try_wait().unwrap() {
            panic!(
                "ended ({status}) before the scenario ran: {}",
                running.wait(Duration::ZERO).show()
            );
        }
        assert!(Instant::now() < deadline, "the scenario never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !processes_in(tmp.path()).is_empty(),
        "the dependency's worker is not running"
    );
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(running.child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let out = running.wait(Duration::from_secs(30));
    assert_eq!(out.code(), Some(130), "{}", out.show());
    assert_nothing_left(tmp.path(), &out);
}
