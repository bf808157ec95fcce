//! JUnit XML (`--junit FILE`), the shape GitLab, Jenkins and most CI dashboards read:
//! `<testsuites>` › one `<testsuite>` per scenario › a `<testcase>` for the run itself, one per SLO
//! check, one per leak or drift check and one per regression check, with `<failure>` / `<error>` /
//! `<skipped>` carrying the numbers (a passed leak check carries its slope in `<system-out>`).

use std::fmt::Write as _;

use crate::gate::Outcome;
use crate::results::{RunResults, ScenarioRun};
use crate::slo::Verdict;
use crate::text::describe_decision;
use crate::text::escape_xml as esc;

enum Status {
    Pass,
    Failure {
        kind: &'static str,
        message: String,
        text: String,
    },
    Error {
        kind: &'static str,
        message: String,
        text: String,
    },
    Skipped {
        message: String,
    },
}

struct Case {
    name: String,
    time: f64,
    status: Status,
    /// `<system-out>`: what a passed check measured.
    out: Option<String>,
}

fn cases(s: &ScenarioRun) -> Vec<Case> {
    let at = s
        .spec
        .as_ref()
        .map(|sp| format!(" ({}:{})", sp.file, sp.line))
        .unwrap_or_default();
    let invalid = s.result.as_ref().and_then(|r| r.invalid.clone());
    let run_status = match s.verdict {
        Verdict::Error => Status::Error {
            kind: "error",
            message: first_line(s.error.as_deref().unwrap_or("the scenario did not run")),
            text: s.error.clone().unwrap_or_default(),
        },
        Verdict::Invalid => Status::Error {
            kind: "invalid",
            message: format!(
                "invalid measurement, neither pass nor fail: {}",
                invalid
                    .as_deref()
                    .unwrap_or("the generator could not keep its schedule")
            ),
            text: invalid.clone().unwrap_or_default(),
        },
        // A failure other than an SLO's: the service died under the load.
        Verdict::Fail if s.error.is_some() => Status::Failure {
            kind: "service",
            message: first_line(s.error.as_deref().unwrap_or_default()),
            text: s.error.clone().unwrap_or_default(),
        },
        _ => Status::Pass,
    };
    let mut out = vec![Case {
        name: "run".to_string(),
        time: s.wall_secs,
        status: run_status,
        out: None,
    }];
    for c in &s.checks {
        let status = if c.passed {
            Status::Pass
        } else {
            Status::Failure {
                kind: "slo",
                message: format!("{}: {}", c.description, c.message),
                text: format!("{}: {} — {}{at}", s.id, c.description, c.message),
            }
        };
        out.push(Case {
            name: format!("slo: {}", c.description),
            time: 0.0,
            status,
            out: None,
        });
    }
    for t in &s.trends {
        let line = t.describe();
        let status = match t.outcome {
            Outcome::Pass => Status::Pass,
            Outcome::Fail => Status::Failure {
                kind: "leak",
                message: line.clone(),
                text: format!("{}: {line}{at}", s.id),
            },
            Outcome::Inconclusive | Outcome::NotComparable => Status::Skipped {
                message: line.clone(),
            },
        };
        let kind = if t.trend.metric == perfgate_runtime::format::TrendMetric::P99Drift {
            "drift"
        } else {
            "leak"
        };
        out.push(Case {
            name: format!("{kind}: {}", t.description),
            time: 0.0,
            status,
            out: Some(line),
        });
    }
    for d in &s.regressions {
        let line = describe_decision(d);
        let text = format!("{}: {line}{at}\n{}", s.id, d.note);
        let status = match d.outcome {
            Outcome::Pass => Status::Pass,
            Outcome::Fail => Status::Failure {
                kind: "regression",
                message: line,
                text,
            },
            Outcome::Inconclusive | Outcome::NotComparable => Status::Skipped {
                message: format!("{line}: {}", d.note),
            },
        };
        out.push(Case {
            name: format!("regression: {}", d.check_name()),
            time: 0.0,
            status,
            out: None,
        });
    }
    out
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

pub fn render(report: &RunResults) -> String {
    let suites: Vec<(&ScenarioRun, Vec<Case>)> =
        report.scenarios.iter().map(|s| (s, cases(s))).collect();
    let count = |f: fn(&Status) -> bool| -> usize {
        suites
            .iter()
            .map(|(_, cs)| cs.iter().filter(|c| f(&c.status)).count())
            .sum()
    };
    let is_failure = |s: &Status| matches!(s, Status::Failure { .. });
    let is_error = |s: &Status| matches!(s, Status::Error { .. });
    let is_skipped = |s: &Status| matches!(s, Status::Skipped { .. });
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"perfgate\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        count(|_| true),
        count(is_failure),
        count(is_error),
        count(is_skipped),
        report.total_secs
    );
    for (s, cs) in &suites {
        let n = |f: &dyn Fn(&Status) -> bool| cs.iter().filter(|c| f(&c.status)).count();
        let file = s
            .spec
            .as_ref()
            .map(|sp| format!(" file=\"{}\"", esc(&sp.file)))
            .unwrap_or_default();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\"{file}>",
            esc(&s.id),
            cs.len(),
            n(&is_failure),
            n(&is_error),
            n(&is_skipped),
            s.wall_secs
        );
        if let Some(r) = &s.result {
            let it = &r.iterations;
            let _ = writeln!(x, "    <properties>");
            for (k, v) in [
                ("iterations", it.count.to_string()),
                ("throughput_per_sec", format!("{:.1}", it.throughput)),
                ("p50_ms", format!("{:.3}", it.latency.p50_ms)),
                ("p99_ms", format!("{:.3}", it.latency.p99_ms)),
                ("error_rate", format!("{:.5}", it.error_rate())),
            ] {
                let _ = writeln!(x, "      <property name=\"{k}\" value=\"{v}\"/>");
            }
            let _ = writeln!(x, "    </properties>");
        }
        for c in cs {
            let open = format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"{file}",
                esc(&s.id),
                esc(&c.name),
                c.time
            );
            match &c.status {
                Status::Pass => match &c.out {
                    Some(text) => {
                        let _ = writeln!(
                            x,
                            "{open}>\n      <system-out>{}</system-out>\n    </testcase>",
                            esc(text)
                        );
                    }
                    None => {
                        let _ = writeln!(x, "{open}/>");
                    }
                },
                Status::Failure {
                    kind,
                    message,
                    text,
                } => {
                    let _ = writeln!(
                        x,
                        "{open}>\n      <failure type=\"{kind}\" message=\"{}\">{}</failure>\n    </testcase>",
                        esc(message),
                        esc(text)
                    );
                }
                Status::Error {
                    kind,
                    message,
                    text,
                } => {
                    let _ = writeln!(
                        x,
                        "{open}>\n      <error type=\"{kind}\" message=\"{}\">{}</error>\n    </testcase>",
                        esc(message),
                        esc(text)
                    );
                }
                Status::Skipped { message } => {
                    let _ = writeln!(
                        x,
                        "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>",
                        esc(message)
                    );
                }
            }
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    x.push_str("</testsuites>\n");
    x
}
