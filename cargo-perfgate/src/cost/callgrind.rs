//! A parser for callgrind's profile format, which valgrind's xtree memory profiles share.
//!
//! Written here rather than calling `callgrind_annotate`: that is a Perl script (one more
//! dependency), and its text output is meant for people, not for parsing.
//!
//! What is kept of a file: per part (one per dump), the event names, the `totals:` line, and per
//! function (by demangled name) the self and inclusive costs of every event, plus the call
//! counts of every caller → callee arc. Positions (lines, addresses) are skipped.

use std::collections::BTreeMap;

/// A malformed profile: the 1-based line and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// A whole profile file: one part per dump (several with `--combine-dumps=yes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// `creator:`, e.g. `callgrind-3.19.0` or `xtree-1`.
    pub creator: Option<String>,
    /// `cmd:`, the profiled command line.
    pub command: Option<String>,
    pub pid: Option<u32>,
    pub parts: Vec<Part>,
}

impl Profile {
    /// The part whose trigger is `dump <label>` (a dump asked for with that label).
    pub fn dump_labelled(&self, label: &str) -> Option<&Part> {
        self.parts
            .iter()
            .find(|p| p.trigger.as_deref().and_then(|t| t.strip_prefix("dump ")) == Some(label))
    }
}

/// The costs of one dump.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    /// `part:` number, when the file says it.
    pub number: Option<u32>,
    /// What made callgrind write this part: `dump <label>`, `Program termination`, ….
    pub trigger: Option<String>,
    /// Event names in column order (`Ir`, `sysCount`, … or `curB`, `totB`, … for xtree).
    pub events: Vec<String>,
    /// The `summary:` line. Not to be trusted for sums: callgrind writes negative (wrapped)
    /// values there after `instrumentation off`, and counts `zero`ed syscalls in it.
    pub summary: Option<Vec<u64>>,
    /// The `totals:` line (the sum of every cost written), or that sum computed when absent.
    pub totals: Vec<u64>,
    /// Costs per function, keyed by [`normalize_name`] of the demangled name.
    pub functions: BTreeMap<String, FunctionCosts>,
    /// Call counts per (caller, callee), both normalised.
    pub calls: BTreeMap<(String, String), u64>,
}

/// Costs of one function, one entry per event of the part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionCosts {
    /// Spent in the function's own instructions.
    pub self_cost: Vec<u64>,
    /// Self plus everything it called (as callgrind_annotate --inclusive=yes computes it).
    pub inclusive: Vec<u64>,
}

impl Part {
    /// Column of `event`, if the part has it.
    pub fn event_index(&self, event: &str) -> Option<usize> {
        self.events.iter().position(|e| e == event)
    }

    /// Total of `event` over the part; 0 when the part did not collect it.
    pub fn total(&self, event: &str) -> u64 {
        self.event_index(event)
            .and_then(|i| self.totals.get(i).copied())
            .unwrap_or(0)
    }

    /// Self cost of `event` in the function named `name` (normalised first).
    pub fn self_cost(&self, name: &str, event: &str) -> u64 {
        self.cost_of(name, event, |f| &f.self_cost)
    }

    /// Inclusive cost of `event` in the function named `name` (normalised first).
    pub fn inclusive(&self, name: &str, event: &str) -> u64 {
        self.cost_of(name, event, |f| &f.inclusive)
    }

    fn cost_of(&self, name: &str, event: &str, pick: impl Fn(&FunctionCosts) -> &Vec<u64>) -> u64 {
        let Some(i) = self.event_index(event) else {
            return 0;
        };
        self.functions
            .get(normalize_name(name))
            .and_then(|f| pick(f).get(i).copied())
            .unwrap_or(0)
    }

    /// Calls made to the function named `callee`, from any caller.
    pub fn calls_to(&self, callee: &str) -> u64 {
        let callee = normalize_name(callee);
        self.calls
            .iter()
            .filter(|((_, to), _)| to == callee)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The name a function is keyed by: without callgrind's recursion-depth suffix (`f'2`, whose
/// presence depends on the call stack when instrumentation was switched on) and without an
/// ELF symbol version (`clock_gettime@@GLIBC_2.17`).
pub fn normalize_name(raw: &str) -> &str {
    let mut name = raw;
    if is_recursion_level(raw) {
        name = raw.rsplit_once('\'').map_or(raw, |(base, _)| base);
    }
    if let Some(at) = name.find('@') {
        let version = name[at..].trim_start_matches('@');
        if at > 0
            && !version.is_empty()
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            name = &name[..at];
        }
    }
    name
}

/// Whether `raw` carries callgrind's recursion-depth suffix.
fn is_recursion_level(raw: &str) -> bool {
    raw.rsplit_once('\'').is_some_and(|(base, depth)| {
        !base.is_empty() && !depth.is_empty() && depth.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Parses a whole callgrind-format file.
pub fn parse(text: &str) -> Result<Profile, ParseError> {
    Parser::default().run(text)
}

/// Name tables of the three compressed kinds; they span the whole file, across parts.
#[derive(Default)]
struct Names {
    functions: BTreeMap<u64, String>,
    files: BTreeMap<u64, String>,
    objects: BTreeMap<u64, String>,
}

/// Costs of one function as written (recursion levels and same-named functions not merged yet).
#[derive(Default)]
struct RawCosts {
    self_cost: Vec<u64>,
    inclusive: Vec<u64>,
}

#[derive(Default)]
struct PartBuilder {
    number: Option<u32>,
    trigger: Option<String>,
    events: Vec<String>,
    summary: Option<Vec<u64>>,
    totals: Option<Vec<u64>>,
    functions: BTreeMap<String, RawCosts>,
    calls: BTreeMap<(String, String), u64>,
    /// Anything beyond headers seen (so a `part:` line starts a new part only after content).
    has_content: bool,
}

impl PartBuilder {
    fn finish(self) -> Part {
        let width = self.events.len();
        let mut functions: BTreeMap<String, FunctionCosts> = BTreeMap::new();
        // Inclusive cost of a merged name: the outermost level's, since it contains the deeper
        // levels' already; only when no outermost level was seen, the largest deeper one.
        let mut base_seen: BTreeMap<String, bool> = BTreeMap::new();
        let mut computed = vec![0u64; width];
        for (raw, costs) in &self.functions {
            let key = normalize_name(raw).to_string();
            let entry = functions
                .entry(key.clone())
                .or_insert_with(|| FunctionCosts {
                    self_cost: vec![0; width],
                    inclusive: vec![0; width],
                });
            for (i, v) in costs.self_cost.iter().enumerate() {
                entry.self_cost[i] += v;
                computed[i] += v;
            }
            let recursion = is_recursion_level(raw);
            let seen_base = base_seen.entry(key).or_insert(false);
            if !recursion {
                if !*seen_base {
                    entry.inclusive = vec![0; width];
                    *seen_base = true;
                }
                for (i, v) in costs.inclusive.iter().enumerate() {
                    entry.inclusive[i] += v;
                }
            } else if !*seen_base {
                for (i, v) in costs.inclusive.iter().enumerate() {
                    entry.inclusive[i] = entry.inclusive[i].max(*v);
                }
            }
        }
        let mut calls = BTreeMap::new();
        for ((from, to), n) in self.calls {
            *calls
                .entry((
                    normalize_name(&from).to_string(),
                    normalize_name(&to).to_string(),
                ))
                .or_insert(0) += n;
        }
        Part {
            number: self.number,
            trigger: self.trigger,
            events: self.events,
            summary: self.summary,
            totals: self.totals.unwrap_or(computed),
            functions,
            calls,
        }
    }
}

#[derive(Default)]
struct Parser {
    names: Names,
    parts: Vec<Part>,
    part: PartBuilder,
    creator: Option<String>,
    command: Option<String>,
    pid: Option<u32>,
    /// Position columns per cost line (`positions: instr line` has two).
    positions: usize,
    function: Option<String>,
    callee: Option<String>,
    /// Set by `calls=`: the next cost line is that call's inclusive cost, with its count.
    pending_call: Option<u64>,
}

impl Parser {
    fn run(mut self, text: &str) -> Result<Profile, ParseError> {
        self.positions = 1;
        for (i, line) in text.lines().enumerate() {
            self.line(line.trim_end()).map_err(|message| ParseError {
                line: i + 1,
                message,
            })?;
        }
        if self.part.has_content || !self.part.events.is_empty() {
            let part = std::mem::take(&mut self.part);
            self.parts.push(part.finish());
        }
        Ok(Profile {
            creator: self.creator,
            command: self.command,
            pid: self.pid,
            parts: self.parts,
        })
    }

    fn new_part(&mut self) {
        let part = std::mem::take(&mut self.part);
        self.parts.push(part.finish());
        self.function = None;
        self.callee = None;
        self.pending_call = None;
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let first = line.as_bytes()[0];
        if first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'*') {
            return self.cost_line(line);
        }
        if let Some((key, value)) = line.split_once('=') {
            if !key.contains(':') && !key.contains(' ') {
                return self.spec_line(key, value);
            }
        }
        if let Some((key, value)) = line.split_once(':') {
            return self.header_line(key.trim(), value.trim());
        }
        Err(format!("unrecognised line {line:?}"))
    }

    fn header_line(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "part" => {
                if self.part.has_content {
                    self.new_part();
                }
                self.part.number = value.parse().ok();
            }
            "events" => {
                if self.part.totals.is_some() {
                    // A new dump without a `part:` line.
                    self.new_part();
                }
                self.part.events = value.split_whitespace().map(str::to_string).collect();
            }
            "positions" => self.positions = value.split_whitespace().count().max(1),
            // Wrapped negative values have been seen here; an unreadable summary is not an error.
            "summary" => self.part.summary = numbers(value).ok(),
            "totals" => self.part.totals = Some(numbers(value)?),
            "desc" => {
                if let Some(t) = value.strip_prefix("Trigger:") {
                    self.part.trigger = Some(t.trim().to_string());
                }
            }
            "creator" => self.creator = Some(value.to_string()),
            "cmd" => self.command = Some(value.to_string()),
            "pid" => self.pid = value.parse().ok(),
            // version, event (long names), thread, and future keys carry nothing needed here.
            _ => {}
        }
        Ok(())
    }

    fn spec_line(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.part.has_content = true;
        match key {
            "fn" => {
                self.function = Some(resolve(&mut self.names.functions, value)?);
                self.pending_call = None;
            }
            "cfn" => self.callee = Some(resolve(&mut self.names.functions, value)?),
            "fl" | "fi" | "fe" | "cfi" | "cfl" => {
                resolve(&mut self.names.files, value)?;
            }
            "ob" | "cob" => {
                resolve(&mut self.names.objects, value)?;
            }
            "calls" => {
                let count = value
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| format!("bad call count in calls={value}"))?;
                self.pending_call = Some(count);
            }
            // Jump records (--collect-jumps) are followed by a position line with no cost.
            "jump" | "jcnd" => {}
            _ => return Err(format!("unknown specification {key}=")),
        }
        Ok(())
    }

    fn cost_line(&mut self, line: &str) -> Result<(), String> {
        self.part.has_content = true;
        let width = self.part.events.len();
        let mut tokens = line.split_ascii_whitespace();
        for _ in 0..self.positions {
            if tokens.next().is_none() {
                return Err("cost line without its position".to_string());
            }
        }
        let mut costs = vec![0u64; width];
        for (i, tok) in tokens.enumerate() {
            if i >= width {
                return Err(format!("more costs than the {width} events on this line"));
            }
            costs[i] = tok
                .parse()
                .map_err(|_| format!("cost {tok:?} is not a number"))?;
        }
        let function = self
            .function
            .clone()
            .unwrap_or_else(|| "(unknown)".to_string());
        let entry = self
            .part
            .functions
            .entry(function.clone())
            .or_insert_with(|| RawCosts {
                self_cost: vec![0; width],
                inclusive: vec![0; width],
            });
        for (i, v) in costs.iter().enumerate() {
            entry.inclusive[i] += v;
        }
        match self.pending_call.take() {
            Some(count) => {
                let callee = self
                    .callee
                    .clone()
                    .unwrap_or_else(|| "(unknown)".to_string());
                *self.part.calls.entry((function, callee)).or_insert(0) += count;
            }
            None => {
                for (i, v) in costs.iter().enumerate() {
                    entry.self_cost[i] += v;
                }
            }
        }
        Ok(())
    }
}

/// `(id) name` defines a compressed name, `(id)` refers to it, anything else is the name itself.
fn resolve(table: &mut BTreeMap<u64, String>, value: &str) -> Result<String, String> {
    let Some(rest) = value.strip_prefix('(') else {
        return Ok(value.to_string());
    };
    let Some((id, name)) = rest.split_once(')') else {
        return Ok(value.to_string());
    };
    let Ok(id) = id.parse::<u64>() else {
        // A real name that starts with a parenthesis, such as `(below main)`.
        return Ok(value.to_string());
    };
    let name = name.strip_prefix(' ').unwrap_or(name);
    if name.is_empty() {
        table
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("name ({id}) used before it was defined"))
    } else {
        table.insert(id, name.to_string());
        Ok(name.to_string())
    }
}

fn numbers(value: &str) -> Result<Vec<u64>, String> {
    value
        .split_whitespace()
        .map(|t| t.parse().map_err(|_| format!("{t:?} is not a number")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/cost/testdata")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn names_lose_recursion_depth_and_symbol_versions_only() {
        assert_eq!(normalize_name("clock_gettime@@GLIBC_2.17"), "clock_gettime");
        assert_eq!(normalize_name("memcpy@GLIBC_2.2.5"), "memcpy");
        assert_eq!(
            normalize_name("alloc::sync::Arc<T,A>::drop_slow'2"),
            "alloc::sync::Arc<T,A>::drop_slow"
        );
        assert_eq!(normalize_name("pow@@GLIBC_2.29'3"), "pow");
        // Rust lifetimes and C++ operators are part of the name.
        assert_eq!(
            normalize_name("<&'a T as core::fmt::Debug>::fmt"),
            "<&'a T as core::fmt::Debug>::fmt"
        );
        assert_eq!(normalize_name("operator@"), "operator@");
        assert_eq!(normalize_name("(below main)"), "(below main)");
    }

    #[test]
    fn combined_dumps_keep_names_across_parts() {
        // --combine-dumps=yes: two labelled windows, then the dump at exit; parts 2 and 3 refer
        // to names that only part 1 defines.
        let p = parse(&testdata("combined-item.callgrind")).unwrap();
        assert_eq!(p.creator.as_deref(), Some("callgrind-3.19.0"));
        assert_eq!(
            p.command.as_deref(),
            Some("target/release/predict-service --port 0")
        );
        assert_eq!(p.parts.len(), 3);
        let triggers: Vec<_> = p
            .parts
            .iter()
            .map(|x| x.trigger.as_deref().unwrap())
            .collect();
        assert_eq!(triggers, ["dump w0", "dump w1", "Program termination"]);
        assert_eq!(p.parts[0].events, ["Ir", "sysCount", "sysTime"]);
        assert_eq!(p.parts[0].totals, [66_547, 46, 3]);
        let w1 = p.dump_labelled("w1").unwrap();
        assert_eq!(w1.number, Some(2));
        assert_eq!(w1.total("Ir"), 66_829);
        assert_eq!(w1.total("sysCount"), 47);
        assert_eq!(w1.total("Dr"), 0);
        assert_eq!(w1.self_cost("predict_service::routes::item", "Ir"), 914);
        assert_eq!(w1.inclusive("predict_service::routes::item", "Ir"), 20_569);
        assert_eq!(w1.self_cost("epoll_wait", "sysCount"), 6);
        assert_eq!(w1.calls_to("malloc"), 30);
        assert_eq!(
            w1.calls[&(
                "predict_service::routes::item".to_string(),
                "__rustc::__rust_alloc".to_string()
            )],
            5
        );
        // At exit callgrind's summary line and its totals disagree; totals are the costs.
        let exit = &p.parts[2];
        assert_eq!(exit.summary.as_deref(), Some(&[751_131, 61, 56][..]));
        assert_eq!(exit.totals, [751_342, 59, 165]);
        assert_eq!(exit.self_cost("epoll_wait", "Ir"), 140);
        assert!(p.dump_labelled("w2").is_none());
    }

    #[test]
    fn xtree_profiles_parse_with_their_events() {
        let p = parse(&testdata("xtmemory-end.kcg")).unwrap();
        assert_eq!(p.creator.as_deref(), Some("xtree-1"));
        let part = &p.parts[0];
        assert_eq!(
            part.events,
            ["curB", "curBk", "totB", "totBk", "totFdB", "totFdBk"]
        );
        assert_eq!(part.total("totB"), 1_347_369);
        assert_eq!(part.total("totBk"), 10_007);
        // hyper's 8 KiB read buffer, once per request.
        assert_eq!(
            part.self_cost("bytes::bytes_mut::BytesMut::reserve_inner", "totB"),
            573_440
        );
        assert_eq!(
            part.self_cost("bytes::bytes_mut::BytesMut::reserve_inner", "totBk"),
            70
        );
    }

    #[test]
    fn instruction_positions_subpositions_and_short_cost_lines() {
        let text = "\
events: Ir Dr
positions: instr line
fl=(1) a.c
fn=(1) main
0x400a00 10 5 2
+3 * 4
cfn=(2) helper
calls=2 0x400b00 20
+2 * 100 7
fn=(2)
0x400b00 20 100 7
0x400b04 +1 3
jump=1 +4 *
+2 *
";
        let p = parse(text).unwrap();
        let part = &p.parts[0];
        // Self: 5 + 4 (a line with fewer costs than events has zeros for the rest).
        assert_eq!(part.self_cost("main", "Ir"), 9);
        assert_eq!(part.self_cost("main", "Dr"), 2);
        assert_eq!(part.inclusive("main", "Ir"), 109);
        assert_eq!(part.inclusive("main", "Dr"), 9);
        assert_eq!(part.self_cost("helper", "Ir"), 103);
        assert_eq!(part.calls_to("helper"), 2);
        // No totals line: the sum of self costs.
        assert_eq!(part.totals, [112, 9]);
    }

    #[test]
    fn recursion_levels_merge_into_one_function() {
        let text = "\
events: Ir
fn=(1) walk
1 10
cfn=(2) walk'2
calls=3 1
1 60
fn=(2)
1 40
cfn=(2)
calls=2 1
1 20
";
        let part = &parse(text).unwrap().parts[0];
        assert_eq!(part.functions.len(), 1);
        // Self: every level; inclusive: the outermost level's, which holds the deeper ones.
        assert_eq!(part.self_cost("walk", "Ir"), 50);
        assert_eq!(part.inclusive("walk", "Ir"), 70);
        assert_eq!(part.calls_to("walk"), 5);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let err = parse("events: Ir\nfn=(3)\n1 5\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("(3)"), "{err}");
        let err = parse("events: Ir\nfn=f\n1 5 6\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("more costs"), "{err}");
        let err = parse("events: Ir\nfn=f\n1 five\n").unwrap_err();
        assert_eq!(err.line, 3);
        let err = parse("events: Ir\nfn=f\nbogus=1\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(parse("events: Ir\ncalls=x 1\n").is_err());
        // A compressed name that looks like (below main) is a name.
        let p = parse("events: Ir\nfn=(below main)\n0 4\n").unwrap();
        assert_eq!(p.parts[0].self_cost("(below main)", "Ir"), 4);
    }
}
