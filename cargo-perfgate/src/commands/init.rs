//! `cargo perfgate init`: makes a service package ready for `cargo perfgate` — the perfgate-runtime
//! dev-dependency, a `[package.metadata.perfgate]` table that says how to start the service, a first
//! scenario in tests/perf.rs and, with `autotests = false`, its `[[test]]` entry. What is already
//! there is kept, so a second run changes nothing. Cargo.toml is edited with toml_edit: the user's
//! formatting and comments stay as they were. What it reads in the sources is `discover/guess.rs`.

use std::path::{Component, Path, PathBuf};

use cargo_metadata::{Metadata, Package};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

use crate::cli::{CommonArgs, InitArgs};
use crate::discover::config::TargetKind;
use crate::discover::guess::{self, PortHow, Seen};
use crate::discover::sources::crate_sources;
use crate::discover::targets::MARKER;
use crate::discover::workspace::{self, test_targets, TestTarget, RUNTIME_CRATE};
use crate::error::{exit, Error, Result};
use crate::files;
use crate::text::list_or_none;
use crate::ui::Ui;

pub fn run(common: &CommonArgs, args: &InitArgs, ui: &Ui) -> Result<i32> {
    let meta = workspace::metadata(common)?;
    let pkg = current_package(&meta, common)?;
    let manifest = pkg.manifest_path.clone().into_std_path_buf();
    let root = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| Error::io(format!("reading {}", manifest.display()), e))?;
    let mut doc: DocumentMut = text.parse().map_err(|e| Error::Config {
        manifest: manifest.clone(),
        msg: format!("it is not valid TOML, so init cannot edit it: {e}"),
    })?;
    let targets = test_targets(pkg);
    let mut done = Vec::new();
    let verb = |now: &str, later: &str| {
        if args.dry_run {
            later.to_string()
        } else {
            now.to_string()
        }
    };

    // 1. The dependency.
    if workspace::depends_on_runtime(pkg) {
        ui.status(
            "Keeping",
            &format!("{RUNTIME_CRATE}: already a dependency of `{}`", pkg.name),
        );
    } else {
        let (dep, how) = runtime_dependency(&meta, &root, args, ui)?;
        let deps = doc
            .entry("dev-dependencies")
            .or_insert_with(|| Item::Table(Table::new()));
        let Some(deps) = deps.as_table_like_mut() else {
            return Err(Error::Config {
                manifest,
                msg: "`dev-dependencies` is not a table".into(),
            });
        };
        deps.insert(RUNTIME_CRATE, Item::Value(Value::InlineTable(dep)));
        done.push(format!("{RUNTIME_CRATE} to [dev-dependencies] ({how})"));
    }

    // 2. How to start the service.
    let perfgate_table = pkg.metadata.get("perfgate");
    let has_service =
        perfgate_table.is_some_and(|t| t.get("service").is_some() || t.get("services").is_some());
    // What the service's code says: its binary's crate and the library it may start the server from.
    let bin = choose_bin(pkg, args.bin.as_deref())?;
    let crates: Vec<_> = std::iter::once(&bin.src_path)
        .chain(
            targets
                .iter()
                .filter(|t| t.kind == TargetKind::Lib)
                .map(|t| &t.src_path),
        )
        .map(|r| crate_sources(r))
        .collect();
    let crate_refs: Vec<_> = crates.iter().collect();
    let probe = match &args.path {
        Some(p) if !p.starts_with('/') => {
            return Err(Error::Usage(format!(
                "--path {p}: a path starts with `/`, e.g. `/healthz`"
            )))
        }
        Some(p) => Some((
            Seen {
                value: p.clone(),
                at: "--path".into(),
            },
            true,
        )),
        None => guess::probe_path(&crate_refs, &root),
    };
    if has_service {
        ui.status(
            "Keeping",
            "[package.metadata.perfgate]: it declares the service already",
        );
    } else {
        let port = match port_from_args(args) {
            Some(p) => Seen {
                value: p,
                at: "the command line".into(),
            },
            None => guess::port_how(&crate_refs, &root).ok_or_else(|| {
                Error::Usage(format!(
                    "cannot tell how `{}` is told its port: no port flag, PORT-like variable or fixed \
                     listening address in its sources. Say it with one of:\n  \
                     cargo perfgate init --port-flag --port      (it takes `--port N`)\n  \
                     cargo perfgate init --port-env PORT         (it reads the variable)\n  \
                     cargo perfgate init --fixed-port 8080       (it always binds 8080)",
                    bin.name
                ))
            })?,
        };
        if let PortHow::Fixed(p) = port.value {
            ui.warn(&format!(
                "`{}` always binds port {p}: perfgate uses it when it is free, but `--ab` and `calibrate`, which \
                 run two instances side by side, cannot; reading the port from a flag or a variable (PORT) lifts that",
                bin.name
            ));
        }
        let ready = probe
            .as_ref()
            .filter(|(_, health)| *health)
            .map(|(s, _)| s.value.as_str());
        let service = service_table(&bin.name, &port.value, ready);
        let table = metadata_table(&mut doc).ok_or_else(|| Error::Config {
            manifest: manifest.clone(),
            msg: "`package.metadata.perfgate` is not a table".into(),
        })?;
        table.insert("service", Item::Value(Value::InlineTable(service.clone())));
        done.push(format!(
            "[package.metadata.perfgate]: service = {} (port: {}, seen in {}{})",
            service.to_string().trim(),
            describe_port(&port.value),
            port.at,
            match (ready, &probe) {
                (Some(r), Some((p, _))) => format!("; readiness: GET {r}, seen in {}", p.at),
                _ => "; ready once the port accepts connections".into(),
            }
        ));
    }

    // 3. The first scenario, unless the package has scenarios already.
    let perf_rs = root.join("tests/perf.rs");
    let has_scenarios = targets
        .iter()
        .any(|t| crate_sources(&t.src_path).mentions(MARKER));
    let mut scenario_file = None;
    if has_scenarios {
        ui.status(
            "Keeping",
            &format!("the package's scenarios: a target already mentions #[{MARKER}]"),
        );
    } else if perf_rs.exists() {
        ui.warn(&format!(
            "{} exists and holds no scenario; init leaves it as it is: add a #[perf_test] fn to it",
            perf_rs.display()
        ));
    } else {
        let (path, at) = match &probe {
            Some((s, _)) => (s.value.clone(), format!("seen in {}", s.at)),
            None => (
                "/".to_string(),
                "no route found in the sources: edit it".to_string(),
            ),
        };
        let (name, text) = scenario(&pkg.name, &path);
        done.push(format!(
            "tests/perf.rs: scenario `{name}`, GET {path} ({at}), {SCENARIO_LOAD}, {SCENARIO_SLOS}"
        ));
        scenario_file = Some(text);
    }

    // 4. Its [[test]] entry when cargo does not find tests/ by itself.
    let autotests_off = doc
        .get("package")
        .and_then(|p| p.get("autotests"))
        .and_then(Item::as_bool)
        == Some(false);
    let listed = targets.iter().any(|t| t.src_path == perf_rs);
    if autotests_off && !listed && (scenario_file.is_some() || perf_rs.exists()) {
        let mut entry = Table::new();
        entry.insert("name", toml_edit::value("perf"));
        entry.insert("path", toml_edit::value("tests/perf.rs"));
        let tests = doc
            .entry("test")
            .or_insert_with(|| Item::ArrayOfTables(Default::default()));
        match tests.as_array_of_tables_mut() {
            Some(a) => a.push(entry),
            None => {
                return Err(Error::Config {
                    manifest,
                    msg: "`test` is not an array of [[test]] tables".into(),
                })
            }
        }
        done.push("[[test]] perf for tests/perf.rs (the package sets autotests = false)".into());
    }

    if done.is_empty() {
        ui.status(
            "Finished",
            &format!("nothing to change: `{}` is set up for perfgate", pkg.name),
        );
        return Ok(exit::PASS);
    }
    for d in &done {
        ui.status(&verb("Added", "Would add"), d);
    }
    if args.dry_run {
        return Ok(exit::PASS);
    }
    let edited = doc.to_string();
    if edited != text {
        files::write_atomic(&manifest, edited.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", manifest.display()), e))?;
    }
    if let Some(text) = scenario_file {
        std::fs::create_dir_all(root.join("tests"))
            .map_err(|e| Error::io(format!("creating {}", root.join("tests").display()), e))?;
        files::write_atomic(&perf_rs, text.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", perf_rs.display()), e))?;
    }
    ui.status(
        "Next",
        "`cargo perfgate` builds the service and the scenarios, starts the service and runs them",
    );
    Ok(exit::PASS)
}

/// The package `init` sets up: `-p NAME`, else the one whose manifest is `--manifest-path` or the
/// nearest above the current directory.
fn current_package<'m>(meta: &'m Metadata, common: &CommonArgs) -> Result<&'m Package> {
    let members = meta.workspace_packages();
    let with_bins = || {
        list_or_none(
            members
                .iter()
                .filter(|p| p.targets.iter().any(|t| t.is_bin()))
                .map(|p| p.name.as_str()),
        )
    };
    match common.packages.as_slice() {
        [] => {}
        [name] => {
            return members
                .iter()
                .copied()
                .find(|p| p.name == *name)
                .ok_or_else(|| {
                    Error::Usage(format!(
                    "package `{name}` is not a member of the workspace (members with a binary: {})",
                    with_bins()
                ))
                })
        }
        _ => {
            return Err(Error::Usage(
                "init sets up one package at a time: give one -p".into(),
            ))
        }
    }
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let start = match &common.manifest_path {
        Some(m) => canon(m).parent().map(Path::to_path_buf).unwrap_or_default(),
        None => {
            std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?
        }
    };
    let start = canon(&start);
    for dir in start.ancestors() {
        if let Some(p) = members.iter().find(|p| {
            p.manifest_path
                .parent()
                .is_some_and(|d| canon(d.as_std_path()) == dir)
        }) {
            return Ok(p);
        }
    }
    Err(Error::Usage(format!(
        "{} is a workspace without a package of its own: say which package to set up with -p NAME (members \
         with a binary: {})",
        meta.workspace_root,
        with_bins()
    )))
}

/// The binary that serves: `--bin`, the only one, `default-run`, or the one named like the package.
fn choose_bin(pkg: &Package, asked: Option<&str>) -> Result<TestTarget> {
    let bins: Vec<TestTarget> = test_targets(pkg)
        .into_iter()
        .filter(|t| t.kind == TargetKind::Bin)
        .collect();
    let names = || {
        bins.iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = asked {
        return bins
            .iter()
            .find(|b| b.name == name)
            .cloned()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--bin {name}: package `{}` has no such binary (its binaries: {})",
                    pkg.name,
                    names()
                ))
            });
    }
    match bins.as_slice() {
        [] => Err(Error::Usage(format!(
            "package `{}` has no binary target: perfgate starts the service from one of the package's [[bin]] \
             targets (src/main.rs or src/bin/NAME.rs); run init in the service's package",
            pkg.name
        ))),
        [one] => Ok(one.clone()),
        many => many
            .iter()
            .find(|b| pkg.default_run.as_deref() == Some(&b.name))
            .or_else(|| many.iter().find(|b| b.name == pkg.name.as_str()))
            .cloned()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "package `{}` has several binaries ({}): say which one serves with --bin NAME",
                    pkg.name,
                    names()
                ))
            }),
    }
}

fn port_from_args(args: &InitArgs) -> Option<PortHow> {
    args.port_flag
        .clone()
        .map(PortHow::Flag)
        .or_else(|| args.port_env.clone().map(PortHow::Env))
        .or(args.fixed_port.map(PortHow::Fixed))
}

fn describe_port(p: &PortHow) -> String {
    match p {
        PortHow::Flag(f) => format!("`{f} {{port}}`, a free port perfgate picks"),
        PortHow::Env(v) if v == "PORT" => "$PORT, which perfgate sets to a free port".into(),
        PortHow::Env(v) => format!("${v}, set to a free port perfgate picks"),
        PortHow::Fixed(p) => format!("always {p}: perfgate checks it is free before starting"),
    }
}

/// `{ bin = "svc", args = ["--port", "{port}"], ready = "/healthz" }`.
fn service_table(bin: &str, port: &PortHow, ready: Option<&str>) -> InlineTable {
    let mut t = InlineTable::new();
    t.insert("bin", bin.into());
    match port {
        PortHow::Flag(f) => {
            let mut a = Array::new();
            a.push(f.as_str());
            a.push("{port}");
            t.insert("args", Value::Array(a));
        }
        // perfgate always sets PORT.
        PortHow::Env(v) if v == "PORT" => {}
        PortHow::Env(v) => {
            let mut e = InlineTable::new();
            e.insert(v, "{port}".into());
            t.insert("env", Value::InlineTable(e));
        }
        PortHow::Fixed(p) => {
            t.insert("port", i64::from(*p).into());
        }
    }
    if let Some(r) = ready {
        t.insert("ready", r.into());
    }
    t.fmt();
    t
}

/// `[package.metadata.perfgate]`, created (as the manifest's last table) when missing.
fn metadata_table(doc: &mut DocumentMut) -> Option<&mut dyn toml_edit::TableLike> {
    let package = doc.get_mut("package")?.as_table_like_mut()?;
    let metadata = package.entry("metadata").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let perfgate = metadata.as_table_like_mut()?.entry("perfgate").or_insert_with(|| {
        let mut t = Table::new();
        t.decor_mut().set_prefix(
            "\n# How `cargo perfgate` starts the service: a release build, on a free loopback port unless \
             `port` is set.\n",
        );
        t.set_position(Some(isize::MAX));
        Item::Table(t)
    });
    perfgate.as_table_like_mut()
}

/// The dependency on perfgate-runtime: the workspace's when it declares one, else a path to the
/// runtime (`--runtime-path`, or the checkout this binary was built from), else a version.
fn runtime_dependency(
    meta: &Metadata,
    root: &Path,
    args: &InitArgs,
    ui: &Ui,
) -> Result<(InlineTable, String)> {
    let mut dep = InlineTable::new();
    let ws_manifest = meta.workspace_root.join("Cargo.toml");
    let in_workspace = std::fs::read_to_string(&ws_manifest)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| {
            t.get("workspace")
                .and_then(|w| w.get("dependencies"))
                .and_then(|d| d.get(RUNTIME_CRATE))
                .is_some()
        });
    if in_workspace {
        dep.insert("workspace", true.into());
        return Ok((dep, "the workspace's".into()));
    }
    let dir = match &args.runtime_path {
        Some(p) => Some(runtime_dir(p).ok_or_else(|| {
            Error::Usage(format!(
                "--runtime-path {}: no {RUNTIME_CRATE} package there",
                p.display()
            ))
        })?),
        None => runtime_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../perfgate-runtime")),
    };
    let version = perfgate_runtime::format::PERFGATE_VERSION;
    match dir {
        Some(dir) => {
            let path = relative_path(root, &dir);
            let shown = path.display().to_string();
            dep.insert("path", shown.as_str().into());
            dep.insert("version", version.into());
            Ok((dep, format!("path = \"{shown}\"")))
        }
        None => {
            ui.warn(&format!(
                "the perfgate checkout this binary was built from is gone, so {RUNTIME_CRATE} is added as version \
                 {version}; if your registry does not have it, give its path with --runtime-path DIR"
            ));
            dep.insert("version", version.into());
            Ok((dep, format!("version = \"{version}\"")))
        }
    }
}

/// The directory of a perfgate-runtime package, canonical, if `dir` is one.
fn runtime_dir(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let t: toml::Table = text.parse().ok()?;
    let name = t.get("package")?.get("name")?.as_str()?;
    (name == RUNTIME_CRATE)
        .then(|| dir.canonicalize().ok())
        .flatten()
}

/// `to` relative to `from` as `cargo add --path` writes it; absolute when they share only `/`.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from = from.canonicalize().unwrap_or_else(|_| from.to_path_buf());
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common <= 1 {
        return to.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

const SCENARIO_LOAD: &str = "4 users for 5s after 1s of warm-up";
const SCENARIO_SLOS: &str = "p99 < 100ms, errors < 1%";

/// The first scenario's fn name and file for a GET of `path`.
fn scenario(package: &str, path: &str) -> (String, String) {
    let slug: String = path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let slug = slug.trim_matches('_').to_string();
    let name = if slug.is_empty() {
        "root".to_string()
    } else if slug.starts_with(|c: char| c.is_ascii_digit()) || is_keyword(&slug) {
        format!("get_{slug}")
    } else {
        slug
    };
    let text = format!(
        r#"//! Load scenarios of `{package}`, run by `cargo perfgate`: it builds the service, starts it on a free
//! loopback port, drives each scenario below as HTTP load and checks its SLOs (exit code 1 when one is
//! breached). Written by `cargo perfgate init` as a first scenario: adjust the load and the SLOs to what
//! your service must sustain, and add scenarios for the requests that matter.

use perfgate_runtime::{{perf_test, Ctx}};

/// GET {path} under a steady closed-loop load: 4 users, each waiting 10 ms between requests. Once you know
/// the rate the service must sustain, an open model (`rate = 200`: 200 requests/s, each one's latency
/// measured from when it was due) is closer to real traffic.
#[perf_test(users = 4, think = "10ms", duration = "5s", warmup = "1s", p99 < "100ms", errors < "1%")]
async fn {name}(ctx: Ctx) -> perfgate_runtime::Result {{
    ctx.get("{path}").send().await?.expect_status(200)?;
    Ok(())
}}
"#
    );
    (name, text)
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "as" | "async"
            | "await"
            | "break"
            | "const"
            | "continue"
            | "crate"
            | "dyn"
            | "else"
            | "enum"
            | "extern"
            | "false"
            | "fn"
            | "for"
            | "gen"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "pub"
            | "ref"
            | "return"
            | "self"
            | "static"
            | "struct"
            | "super"
            | "trait"
            | "true"
            | "try"
            | "type"
            | "unsafe"
            | "use"
            | "where"
            | "while"
            | "yield"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_identifiers() {
        assert_eq!(scenario("s", "/healthz").0, "healthz");
        assert_eq!(scenario("s", "/").0, "root");
        assert_eq!(
            scenario("s", "/api/v1/health-check").0,
            "api_v1_health_check"
        );
        assert_eq!(scenario("s", "/static").0, "get_static");
        assert_eq!(scenario("s", "/2fa").0, "get_2fa");
        let text = scenario("shop", "/healthz").1;
        assert!(
            text.contains("async fn healthz(ctx: Ctx)") && text.contains("ctx.get(\"/healthz\")"),
            "{text}"
        );
    }

    #[test]
    fn relative_paths_as_cargo_add_writes_them() {
        assert_eq!(
            relative_path(
                Path::new("/nonexistent/a/svc"),
                Path::new("/nonexistent/a/perfgate/perfgate-runtime")
            ),
            Path::new("../perfgate/perfgate-runtime")
        );
        assert_eq!(
            relative_path(Path::new("/x/svc"), Path::new("/y/rt")),
            Path::new("/y/rt")
        );
    }

    #[test]
    fn the_service_table_says_how_the_port_is_passed() {
        let t = |p: PortHow, r| service_table("svc", &p, r).to_string();
        assert_eq!(
            t(PortHow::Flag("--port".into()), Some("/healthz")),
            r#"{ bin = "svc", args = ["--port", "{port}"], ready = "/healthz" }"#
        );
        assert_eq!(t(PortHow::Env("PORT".into()), None), r#"{ bin = "svc" }"#);
        assert_eq!(
            t(PortHow::Env("APP_PORT".into()), None),
            r#"{ bin = "svc", env = { APP_PORT = "{port}" } }"#
        );
        assert_eq!(
            t(PortHow::Fixed(8080), None),
            r#"{ bin = "svc", port = 8080 }"#
        );
    }

    #[test]
    fn the_manifest_keeps_its_comments_and_gets_the_table_last() {
        let mut doc: DocumentMut = "# my service\n[package]\nname = \"svc\" # the name\n\n[dependencies]\naxum = \"0.8\"\n"
            .parse()
            .unwrap();
        metadata_table(&mut doc).unwrap().insert(
            "service",
            Item::Value(Value::InlineTable(service_table(
                "svc",
                &PortHow::Env("PORT".into()),
                None,
            ))),
        );
        let out = doc.to_string();
        assert!(
            out.starts_with("# my service\n[package]\nname = \"svc\" # the name\n"),
            "{out}"
        );
        assert!(
            out.ends_with("axum = \"0.8\"\n\n# How `cargo perfgate` starts the service: a release build, on a free loopback port unless `port` is set.\n[package.metadata.perfgate]\nservice = { bin = \"svc\" }\n"),
            "{out}"
        );
        let back: toml::Table = out.parse().unwrap();
        assert_eq!(
            back["package"]["metadata"]["perfgate"]["service"]["bin"].as_str(),
            Some("svc")
        );
    }
}
