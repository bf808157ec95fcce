//! Parsing of the attribute's arguments: `rate = 300, duration = "20s", p99 < "40ms", ...`.
//!
//! The arguments are first split on top-level commas and each item is parsed on its own, so one
//! bad item does not hide the errors of the others: every error is collected and reported at once.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, Lit, LitInt, LitStr, Token};

use perfgate_units::{self as units, Duration, BYTES_FORM, COUNT_FORM, DURATION_FORM};

/// Every key the attribute accepts, in the order the error message lists them.
const KEYS: [&str; 16] = [
    "rate",
    "users",
    "stages",
    "think",
    "max_in_flight",
    "duration",
    "warmup",
    "timeout",
    "regression",
    "cost_regression",
    "service",
    "data",
    "tier",
    "smoke",
    "nightly",
    "soak",
];

/// The trend checks (`rss_growth < "1MiB/h"`): bounds on how the service moves over a long run.
const TREND_METRICS: [&str; 4] = ["rss_growth", "fds_growth", "threads_growth", "p99_drift"];

const SLO_FORM: &str =
    "an SLO such as `p99 < \"40ms\"`, `pay.p99 < \"20ms\"`, `errors < \"0.5%\"`, `throughput > \"100/s\"`, \
     `instructions < \"150k\"` or `allocs < 40`, or a trend bound such as `rss_growth < \"1MiB/h\"` \
     (rss_growth, fds_growth, threads_growth, p99_drift)";

const METRICS: &str =
    "p50, p90, p95, p99, p99.9, max, mean, errors, throughput, instructions, allocs, alloc_bytes, syscalls";

/// The parsed attribute. Settings left as None take the runtime's defaults in the expansion, so
/// the defaults are defined once, in `perfgate_runtime::format`.
#[derive(Debug, PartialEq)]
pub struct Args {
    pub load: Load,
    pub duration_ms: Option<u64>,
    pub warmup_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub max_in_flight: Option<u64>,
    pub slos: Vec<Slo>,
    pub regression_pct: Option<f64>,
    pub cost_regression_pct: Option<f64>,
    pub service: Option<String>,
    pub data: Vec<String>,
    /// `tier = [...]`: the only tiers the scenario runs in (empty: all).
    pub tiers_only: Vec<String>,
    /// `soak = "2h"` or `soak = ("2h", "10m")`: the scenario's measured duration in a tier, and its
    /// warm-up there.
    pub tier_durations: Vec<(String, u64, Option<u64>)>,
    pub trends: Vec<Trend>,
}

/// Mirrors `perfgate_runtime::format::TrendSlo`.
#[derive(Debug, PartialEq)]
pub struct Trend {
    pub metric: TrendMetric,
    pub allowance: Allowance,
}

/// Variant names match `perfgate_runtime::format::TrendMetric`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrendMetric {
    RssGrowth,
    FdsGrowth,
    ThreadsGrowth,
    P99Drift,
}

impl TrendMetric {
    fn from_name(name: &str) -> Option<TrendMetric> {
        Some(match name {
            "rss_growth" => TrendMetric::RssGrowth,
            "fds_growth" => TrendMetric::FdsGrowth,
            "threads_growth" => TrendMetric::ThreadsGrowth,
            "p99_drift" => TrendMetric::P99Drift,
            _ => return None,
        })
    }

    pub fn variant(self) -> &'static str {
        match self {
            TrendMetric::RssGrowth => "RssGrowth",
            TrendMetric::FdsGrowth => "FdsGrowth",
            TrendMetric::ThreadsGrowth => "ThreadsGrowth",
            TrendMetric::P99Drift => "P99Drift",
        }
    }

    /// The forms its allowance may take, for error messages.
    fn form(self, name: &str) -> String {
        match self {
            TrendMetric::RssGrowth => format!(
                "a size per hour or a percentage of the service's memory per hour, e.g. `{name} < \"1MiB/h\"` or `{name} < \"5%/h\"`, or 0"
            ),
            TrendMetric::FdsGrowth | TrendMetric::ThreadsGrowth => format!(
                "a count per hour, e.g. `{name} < \"10/h\"`, or 0 (no growth)"
            ),
            TrendMetric::P99Drift => format!(
                "a duration per hour or a percentage of the p99 per hour, e.g. `{name} < \"5ms/h\"` or `{name} < \"10%/h\"`, or 0"
            ),
        }
    }
}

/// Mirrors `perfgate_runtime::format::Allowance`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Allowance {
    PerHour(f64),
    PercentPerHour(f64),
}

/// Mirrors `perfgate_runtime::format::LoadModel` (this crate cannot depend on the runtime,
/// which depends on it).
#[derive(Debug, PartialEq)]
pub enum Load {
    Open { rate: f64 },
    Ramping { stages: Vec<Stage> },
    Closed { users: u64, think_ms: u64 },
}

#[derive(Debug, PartialEq)]
pub struct Stage {
    pub duration_ms: u64,
    pub target_rate: f64,
}

#[derive(Debug, PartialEq)]
pub struct Slo {
    pub request: Option<String>,
    pub metric: Metric,
    pub op: Op,
    pub threshold: f64,
}

/// Variant names match `perfgate_runtime::format::Metric`'s: the expansion names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
    Errors,
    Throughput,
    Instructions,
    Allocs,
    AllocBytes,
    Syscalls,
}

impl Metric {
    fn from_name(name: &str) -> Option<Metric> {
        Some(match name {
            "p50" => Metric::P50,
            "p90" => Metric::P90,
            "p95" => Metric::P95,
            "p99" => Metric::P99,
            "p99.9" | "p999" => Metric::P999,
            "max" => Metric::Max,
            "mean" => Metric::Mean,
            "errors" => Metric::Errors,
            "throughput" => Metric::Throughput,
            "instructions" => Metric::Instructions,
            "allocs" => Metric::Allocs,
            "alloc_bytes" => Metric::AllocBytes,
            "syscalls" => Metric::Syscalls,
            _ => return None,
        })
    }

    pub fn variant(self) -> &'static str {
        match self {
            Metric::P50 => "P50",
            Metric::P90 => "P90",
            Metric::P95 => "P95",
            Metric::P99 => "P99",
            Metric::P999 => "P999",
            Metric::Max => "Max",
            Metric::Mean => "Mean",
            Metric::Errors => "Errors",
            Metric::Throughput => "Throughput",
            Metric::Instructions => "Instructions",
            Metric::Allocs => "Allocs",
            Metric::AllocBytes => "AllocBytes",
            Metric::Syscalls => "Syscalls",
        }
    }
}

/// Variant names match `perfgate_runtime::format::Op`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn variant(self) -> &'static str {
        match self {
            Op::Lt => "Lt",
            Op::Le => "Le",
            Op::Gt => "Gt",
            Op::Ge => "Ge",
        }
    }
}

/// One comma-separated item of the attribute.
enum Item {
    Setting(Ident, Setting),
    Slo(Slo),
    Trend(Ident, Trend),
}

enum Setting {
    Rate(f64),
    Users(u64),
    Stages(Vec<Stage>),
    Think(u64),
    MaxInFlight(u64),
    Duration(u64),
    Warmup(u64),
    Timeout(u64),
    Regression(f64),
    CostRegression(f64),
    Service(String),
    Data(Vec<String>),
    Tier(Vec<String>),
    TierDuration(u64, Option<u64>),
}

/// Adds `error` to the collected ones.
fn push(errors: &mut Option<syn::Error>, error: syn::Error) {
    match errors {
        Some(e) => e.combine(error),
        None => *errors = Some(error),
    }
}

pub fn parse(attr: TokenStream) -> syn::Result<Args> {
    let mut errors = None;
    let mut items = Vec::new();
    // A load model that was written but failed to parse has been reported already: saying it is
    // missing as well would only mislead.
    let mut load_written = false;
    for tokens in split_items(attr) {
        let parsed = tokens.and_then(|tokens| {
            load_written |= matches!(tokens.clone().into_iter().next(),
                Some(TokenTree::Ident(i)) if i == "rate" || i == "users" || i == "stages");
            parse_item.parse2(tokens)
        });
        match parsed {
            Ok(item) => items.push(item),
            Err(e) => push(&mut errors, e),
        }
    }
    let args = assemble(items, load_written, &mut errors);
    match errors {
        Some(e) => Err(e),
        None => Ok(args.expect("arguments are complete when there is no error")),
    }
}

/// Splits on top-level commas (commas inside `[...]`/`(...)` belong to their group's token).
/// An empty item (`a = 1,, b = 2`) is an error, kept in place so errors come in source order.
fn split_items(attr: TokenStream) -> Vec<syn::Result<TokenStream>> {
    let mut items = Vec::new();
    let mut current = Vec::new();
    for tt in attr {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ',' => {
                if current.is_empty() {
                    items.push(Err(syn::Error::new(
                        p.span(),
                        "expected a setting or an SLO before this comma",
                    )));
                } else {
                    items.push(Ok(current.drain(..).collect()));
                }
            }
            _ => current.push(tt),
        }
    }
    if !current.is_empty() {
        items.push(Ok(current.into_iter().collect()));
    }
    items
}

fn parse_item(input: ParseStream) -> syn::Result<Item> {
    if input.peek(LitStr) {
        // `"GET /items".p99 < "5ms"`: a request whose name is not an identifier.
        let request: LitStr = input.parse()?;
        if !input.peek(Token![.]) {
            return Err(syn::Error::new(
                request.span(),
                format!(
                    "expected `.` and a metric after the request name, e.g. `{}.p99 < \"20ms\"`",
                    request.token()
                ),
            ));
        }
        input.parse::<Token![.]>()?;
        return parse_slo(input, Some(request.value()));
    }
    let ident = match input.parse::<Ident>() {
        Ok(ident) => ident,
        Err(_) => return Err(input.error(unknown_item_message(None))),
    };
    let name = ident.to_string();
    if KEYS.contains(&name.as_str()) {
        input.parse::<Token![=]>()?;
        let setting = parse_setting(&name, input)?;
        return Ok(Item::Setting(ident, setting));
    }
    if let Some(metric) = TrendMetric::from_name(&name) {
        return parse_trend(input, &ident, metric);
    }
    // `p99.9` lexes as `p99` `.` `9`: a dot followed by a number continues the metric's name.
    let dotted_metric = input.peek(Token![.]) && input.peek2(LitInt);
    if input.peek(Token![.]) && !dotted_metric {
        // `pay.p99 < "20ms"`
        input.parse::<Token![.]>()?;
        return parse_slo(input, Some(name));
    }
    if dotted_metric || Metric::from_name(&name).is_some() || peek_op(input) {
        return parse_slo_from(input, ident, None);
    }
    Err(syn::Error::new(
        ident.span(),
        unknown_item_message(Some(&name)),
    ))
}

fn unknown_item_message(key: Option<&str>) -> String {
    let allowed = KEYS.join(", ");
    match key {
        Some(key) => {
            let hint = suggestion(key)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            format!("unknown key `{key}`{hint}; expected one of: {allowed}, or {SLO_FORM}")
        }
        None => format!("expected a setting (one of: {allowed}) or {SLO_FORM}"),
    }
}

/// `rss_growth < "1MiB/h"`, `fds_growth < 0`, `p99_drift <= "10%/h"` (the metric already read).
fn parse_trend(input: ParseStream, ident: &Ident, metric: TrendMetric) -> syn::Result<Item> {
    let name = ident.to_string();
    if input.peek(Token![.]) {
        return Err(input.error(format!(
            "`{name}` is a trend of the whole service, not of a request: write `{name} < ...` on its own"
        )));
    }
    if input.peek(Token![>]) || input.peek(Token![>=]) {
        return Err(input.error(format!(
            "a trend check bounds how fast `{name}` may rise: write {}",
            metric.form(&name)
        )));
    }
    parse_op(input, ident, &name)?;
    let lit: Lit = input.parse()?;
    let bad = |why: &str| {
        syn::Error::new(
            lit.span(),
            format!("{why}; expected {}", metric.form(&name)),
        )
    };
    let allowance = match &lit {
        Lit::Int(_) | Lit::Float(_) => {
            if number(&lit, "a rate")? != 0.0 {
                return Err(bad("a number other than 0 needs a unit and a time"));
            }
            Allowance::PerHour(0.0)
        }
        Lit::Str(s) => {
            let v = s.value();
            let percent = units::parse_percent_per_hour(&v);
            let absolute = match metric {
                TrendMetric::RssGrowth => units::parse_bytes_per_hour(&v),
                TrendMetric::FdsGrowth | TrendMetric::ThreadsGrowth => {
                    units::parse_count_per_hour(&v)
                }
                TrendMetric::P99Drift => units::parse_duration_per_hour(&v),
            };
            match (absolute, percent, metric) {
                (Some(v), _, _) => Allowance::PerHour(v),
                (None, Some(p), TrendMetric::RssGrowth | TrendMetric::P99Drift) => {
                    Allowance::PercentPerHour(p)
                }
                _ => return Err(bad(&format!("invalid allowance {}", s.token()))),
            }
        }
        _ => return Err(bad("invalid allowance")),
    };
    Ok(Item::Trend(ident.clone(), Trend { metric, allowance }))
}

/// The closest key or metric to a misspelt one, when it is close enough to be a typo (one edit
/// for short words: `p42` is not a typo of `p50`).
fn suggestion(word: &str) -> Option<&'static str> {
    let metrics = [
        "p50",
        "p90",
        "p95",
        "p99",
        "p99.9",
        "max",
        "mean",
        "errors",
        "throughput",
        "instructions",
        "allocs",
        "alloc_bytes",
        "syscalls",
    ];
    let tolerance = (word.chars().count() / 3).max(1);
    KEYS.iter()
        .chain(metrics.iter())
        .chain(TREND_METRICS.iter())
        .map(|&k| (edit_distance(word, k), k))
        .filter(|&(d, _)| d <= tolerance)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

fn peek_op(input: ParseStream) -> bool {
    input.peek(Token![<]) || input.peek(Token![>])
}

/// After `request.` (or at the start when there is no request).
fn parse_slo(input: ParseStream, request: Option<String>) -> syn::Result<Item> {
    let first: Ident = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected a metric after `.`: one of {METRICS}"),
        )
    })?;
    parse_slo_from(input, first, request)
}

/// The metric (its first identifier already read), the comparison and the threshold.
fn parse_slo_from(input: ParseStream, first: Ident, request: Option<String>) -> syn::Result<Item> {
    let mut name = first.to_string();
    // `p99.9` lexes as `p99` `.` `9`.
    if input.peek(Token![.]) && input.peek2(LitInt) {
        input.parse::<Token![.]>()?;
        let decimals: LitInt = input.parse()?;
        name = format!("{name}.{decimals}");
    }
    if TrendMetric::from_name(&name).is_some() {
        return Err(syn::Error::new(
            first.span(),
            format!("`{name}` is a trend of the whole service, not of a request: write `{name} < ...` on its own"),
        ));
    }
    let Some(metric) = Metric::from_name(&name) else {
        let hint = suggestion(&name)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(syn::Error::new(
            first.span(),
            format!("unknown metric `{name}`{hint}; expected one of {METRICS}"),
        ));
    };
    let op = parse_op(input, &first, &name)?;
    let threshold = parse_threshold(input, metric)?;
    Ok(Item::Slo(Slo {
        request,
        metric,
        op,
        threshold,
    }))
}

fn parse_op(input: ParseStream, metric: &Ident, name: &str) -> syn::Result<Op> {
    let op = if input.peek(Token![<=]) {
        input.parse::<Token![<=]>()?;
        Op::Le
    } else if input.peek(Token![>=]) {
        input.parse::<Token![>=]>()?;
        Op::Ge
    } else if input.peek(Token![<]) {
        input.parse::<Token![<]>()?;
        Op::Lt
    } else if input.peek(Token![>]) {
        input.parse::<Token![>]>()?;
        Op::Gt
    } else {
        let message = format!(
            "expected a comparison `<`, `<=`, `>` or `>=` after `{name}`, e.g. `{name} < \"40ms\"`"
        );
        return Err(if input.is_empty() {
            syn::Error::new(metric.span(), message)
        } else {
            input.error(message)
        });
    };
    if input.is_empty() {
        return Err(syn::Error::new(
            metric.span(),
            format!("missing threshold after the comparison of `{name}`"),
        ));
    }
    Ok(op)
}

fn parse_threshold(input: ParseStream, metric: Metric) -> syn::Result<f64> {
    let lit: Lit = input.parse()?;
    match metric {
        Metric::Errors => match &lit {
            Lit::Str(s) => match units::parse_percent(&s.value()) {
                Some(pct) if pct <= 100.0 => Ok(pct / 100.0),
                Some(_) => Err(syn::Error::new(
                    s.span(),
                    "an error rate is at most \"100%\"",
                )),
                None => Err(syn::Error::new(
                    s.span(),
                    "expected an error rate as a percentage like \"0.5%\" or a fraction like 0.005",
                )),
            },
            _ => {
                let fraction = number(
                    &lit,
                    "an error rate as a percentage like \"0.5%\" or a fraction like 0.005",
                )?;
                if !(0.0..=1.0).contains(&fraction) {
                    return Err(syn::Error::new(
                        lit.span(),
                        "an error rate given as a number is a fraction between 0 and 1 (write \"5%\" for five percent)",
                    ));
                }
                Ok(fraction)
            }
        },
        Metric::Throughput => {
            let per_second = match &lit {
                Lit::Str(s) => units::parse_per_second(&s.value()).ok_or_else(|| {
                    syn::Error::new(
                        s.span(),
                        "expected a throughput like \"100/s\" or a number of iterations per second",
                    )
                })?,
                _ => number(
                    &lit,
                    "a throughput like \"100/s\" or a number of iterations per second",
                )?,
            };
            if per_second < 0.0 {
                return Err(syn::Error::new(
                    lit.span(),
                    "a throughput cannot be negative",
                ));
            }
            Ok(per_second)
        }
        Metric::Instructions | Metric::Allocs | Metric::Syscalls => {
            let count = match &lit {
                Lit::Str(s) => units::parse_count(&s.value()).ok_or_else(|| {
                    syn::Error::new(
                        s.span(),
                        format!("expected a count per iteration: {COUNT_FORM}"),
                    )
                })?,
                _ => number(&lit, &format!("a count per iteration: {COUNT_FORM}"))?,
            };
            if count < 0.0 {
                return Err(syn::Error::new(lit.span(), "a count cannot be negative"));
            }
            Ok(count)
        }
        Metric::AllocBytes => {
            let bytes = match &lit {
                Lit::Str(s) => units::parse_bytes(&s.value()).ok_or_else(|| {
                    syn::Error::new(
                        s.span(),
                        format!("expected bytes allocated per iteration: {BYTES_FORM}"),
                    )
                })?,
                _ => number(&lit, &format!("bytes per iteration: {BYTES_FORM}"))?,
            };
            if bytes < 0.0 {
                return Err(syn::Error::new(lit.span(), "a size cannot be negative"));
            }
            Ok(bytes)
        }
        _ => match &lit {
            Lit::Str(s) => Ok(duration(s)?.as_ms_f64()),
            _ => Err(syn::Error::new(
                lit.span(),
                "a latency threshold is a duration string with a unit, e.g. \"40ms\"",
            )),
        },
    }
}

/// A numeric literal (syn reads a leading `-` as part of it).
fn number(lit: &Lit, expected: &str) -> syn::Result<f64> {
    let value = match lit {
        Lit::Int(i) => i.base10_parse::<f64>(),
        Lit::Float(f) => f.base10_parse::<f64>(),
        _ => return Err(syn::Error::new(lit.span(), format!("expected {expected}"))),
    }?;
    if !value.is_finite() {
        return Err(syn::Error::new(lit.span(), "the number is too large"));
    }
    Ok(value)
}

fn positive_number(input: ParseStream, what: &str) -> syn::Result<f64> {
    let lit: Lit = input.parse()?;
    let value = number(&lit, &format!("{what}: a number greater than 0"))?;
    if value <= 0.0 {
        return Err(syn::Error::new(
            lit.span(),
            format!("{what} must be greater than 0"),
        ));
    }
    Ok(value)
}

fn positive_int(input: ParseStream, what: &str) -> syn::Result<u64> {
    let lit: Lit = input.parse()?;
    let message = format!("{what} must be a whole number greater than 0");
    match &lit {
        Lit::Int(i) => match i.base10_parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(syn::Error::new(lit.span(), message)),
        },
        _ => Err(syn::Error::new(lit.span(), message)),
    }
}

fn duration(lit: &LitStr) -> syn::Result<Duration> {
    Duration::parse(&lit.value()).ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            format!("invalid duration {}: expected {DURATION_FORM}", lit.token()),
        )
    })
}

/// A duration string for one of the spec's integer-millisecond fields.
fn whole_ms(lit: &LitStr, key: &str, allow_zero: bool) -> syn::Result<u64> {
    let d = duration(lit)?;
    if d.is_zero() && !allow_zero {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must be longer than 0"),
        ));
    }
    d.as_whole_ms().ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            format!("`{key}` must be a whole number of milliseconds, e.g. \"2ms\" or \"1500ms\""),
        )
    })
}

fn duration_setting(input: ParseStream, key: &str, allow_zero: bool) -> syn::Result<u64> {
    if !input.peek(LitStr) {
        return Err(input.error(format!(
            "expected a duration string for `{key}`: {DURATION_FORM}"
        )));
    }
    whole_ms(&input.parse()?, key, allow_zero)
}

fn parse_setting(key: &str, input: ParseStream) -> syn::Result<Setting> {
    if input.is_empty() {
        return Err(input.error(format!("expected a value after `{key} =`")));
    }
    Ok(match key {
        "rate" => Setting::Rate(positive_number(input, "`rate` (iterations per second)")?),
        "users" => Setting::Users(positive_int(input, "`users`")?),
        "max_in_flight" => Setting::MaxInFlight(positive_int(input, "`max_in_flight`")?),
        "stages" => Setting::Stages(parse_stages(input)?),
        "think" => Setting::Think(duration_setting(input, key, true)?),
        "duration" => Setting::Duration(duration_setting(input, key, false)?),
        "warmup" => Setting::Warmup(duration_setting(input, key, true)?),
        "timeout" => Setting::Timeout(duration_setting(input, key, false)?),
        "regression" => Setting::Regression(percent(
            input,
            "expected the tolerated slowdown as a percentage string, e.g. \"10%\"",
        )?),
        "cost_regression" => Setting::CostRegression(percent(
            input,
            "expected the tolerated rise of instructions and bytes per iteration as a percentage \
             string, e.g. \"1%\"",
        )?),
        "service" => {
            let lit: LitStr = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected the service's name as a string, e.g. \"api\"",
                )
            })?;
            if lit.value().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    "the service's name cannot be empty",
                ));
            }
            Setting::Service(lit.value())
        }
        "data" => Setting::Data(parse_data(input)?),
        "tier" => Setting::Tier(parse_tiers(input)?),
        "smoke" | "nightly" | "soak" => {
            let (duration, warmup) = parse_tier_window(input, key)?;
            Setting::TierDuration(duration, warmup)
        }
        _ => unreachable!("every key of KEYS has a parser"),
    })
}

/// A percentage string (`"10%"`); anything else is an error saying `expected`.
fn percent(input: ParseStream, expected: &str) -> syn::Result<f64> {
    let lit: Lit = input.parse()?;
    let pct = match &lit {
        Lit::Str(s) => units::parse_percent(&s.value()),
        _ => None,
    };
    pct.ok_or_else(|| syn::Error::new(lit.span(), expected))
}

/// `[("10s", 100), ("30s", 500)]`
fn parse_stages(input: ParseStream) -> syn::Result<Vec<Stage>> {
    const FORM: &str =
        "expected a list of (duration, target rate) pairs, e.g. `[(\"10s\", 100), (\"30s\", 500)]`";
    if !input.peek(syn::token::Bracket) {
        return Err(input.error(FORM));
    }
    let content;
    let bracket = syn::bracketed!(content in input);
    let stages = Punctuated::<Stage, Token![,]>::parse_terminated_with(&content, |input| {
        if !input.peek(syn::token::Paren) {
            return Err(input.error(FORM));
        }
        let pair;
        syn::parenthesized!(pair in input);
        let lit: LitStr = pair.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the stage's duration as a string with a unit, e.g. (\"30s\", 500)",
            )
        })?;
        let duration_ms = whole_ms(&lit, "stages", true)?;
        pair.parse::<Token![,]>()
            .map_err(|e| syn::Error::new(e.span(), FORM))?;
        let rate: Lit = pair.parse()?;
        let target_rate = number(&rate, "the stage's target rate in iterations per second")?;
        if target_rate < 0.0 {
            return Err(syn::Error::new(
                rate.span(),
                "a stage's target rate cannot be negative",
            ));
        }
        // Tolerate a trailing comma, as in any tuple.
        if pair.peek(Token![,]) {
            pair.parse::<Token![,]>()?;
        }
        if !pair.is_empty() {
            return Err(pair.error("a stage is a (duration, target rate) pair"));
        }
        Ok(Stage {
            duration_ms,
            target_rate,
        })
    })?;
    if stages.is_empty() {
        return Err(syn::Error::new(
            bracket.span.join(),
            "`stages` needs at least one stage",
        ));
    }
    Ok(stages.into_iter().collect())
}

/// `["fixtures/a.jsonl", "fixtures/b.jsonl"]`, or one string.
fn parse_data(input: ParseStream) -> syn::Result<Vec<String>> {
    let lits: Vec<LitStr> = if input.peek(LitStr) {
        vec![input.parse()?]
    } else if input.peek(syn::token::Bracket) {
        let content;
        syn::bracketed!(content in input);
        Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect()
    } else {
        return Err(
            input.error("expected a list of file paths, e.g. `[\"fixtures/requests.jsonl\"]`")
        );
    };
    lits.iter()
        .map(|lit| match lit.value() {
            path if path.is_empty() => Err(syn::Error::new(
                lit.span(),
                "a data file path cannot be empty",
            )),
            path => Ok(path),
        })
        .collect()
}

/// `soak = "2h"`, or `soak = ("2h", "10m")` with the warm-up in that tier.
fn parse_tier_window(input: ParseStream, key: &str) -> syn::Result<(u64, Option<u64>)> {
    if !input.peek(syn::token::Paren) {
        return Ok((duration_setting(input, key, false)?, None));
    }
    let form = format!(
        "expected the scenario's duration in the {key} tier, or its duration and warm-up there, e.g. \
         `{key} = \"2h\"` or `{key} = (\"2h\", \"10m\")`"
    );
    let pair;
    let parens = syn::parenthesized!(pair in input);
    let duration = duration_setting(&pair, key, false)?;
    if pair.is_empty() {
        return Err(syn::Error::new(parens.span.join(), form));
    }
    pair.parse::<Token![,]>()
        .map_err(|e| syn::Error::new(e.span(), &form))?;
    let warmup = duration_setting(&pair, key, true)?;
    if pair.peek(Token![,]) {
        pair.parse::<Token![,]>()?;
    }
    if !pair.is_empty() {
        return Err(pair.error(form));
    }
    Ok((duration, Some(warmup)))
}

/// `tier = ["nightly", "soak"]`, or one name: known tier names, each once.
fn parse_tiers(input: ParseStream) -> syn::Result<Vec<String>> {
    let tiers = units::TIERS.join(", ");
    let lits: Vec<LitStr> = if input.peek(LitStr) {
        vec![input.parse()?]
    } else if input.peek(syn::token::Bracket) {
        let content;
        let bracket = syn::bracketed!(content in input);
        let lits: Vec<LitStr> = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect();
        if lits.is_empty() {
            return Err(syn::Error::new(
                bracket.span.join(),
                format!("`tier` needs at least one tier: {tiers}"),
            ));
        }
        lits
    } else {
        return Err(input.error(format!(
            "expected the tiers the scenario runs in, e.g. `tier = [\"nightly\", \"soak\"]` (tiers: {tiers})"
        )));
    };
    let mut out: Vec<String> = Vec::new();
    for lit in &lits {
        let name = lit.value();
        if !units::TIERS.contains(&name.as_str()) {
            let hint = units::TIERS
                .iter()
                .find(|t| edit_distance(&name, t) <= 2)
                .map(|t| format!(" (did you mean \"{t}\"?)"))
                .unwrap_or_default();
            return Err(syn::Error::new(
                lit.span(),
                format!("unknown tier {}{hint}; the tiers are {tiers}", lit.token()),
            ));
        }
        if out.contains(&name) {
            return Err(syn::Error::new(
                lit.span(),
                format!("tier {} is listed twice", lit.token()),
            ));
        }
        out.push(name);
    }
    Ok(out)
}

/// Checks the combination of settings (one load model, keys that need a given model, duplicates).
fn assemble(items: Vec<Item>, load_written: bool, errors: &mut Option<syn::Error>) -> Option<Args> {
    let mut load: Option<(Ident, Load)> = None;
    let mut think: Option<(Ident, u64)> = None;
    let mut max_in_flight: Option<(Ident, u64)> = None;
    let mut seen: Vec<String> = Vec::new();
    let mut args = Args {
        load: Load::Open { rate: 0.0 },
        duration_ms: None,
        warmup_ms: None,
        timeout_ms: None,
        max_in_flight: None,
        slos: Vec::new(),
        regression_pct: None,
        cost_regression_pct: None,
        service: None,
        data: Vec::new(),
        tiers_only: Vec::new(),
        tier_durations: Vec::new(),
        trends: Vec::new(),
    };
    let mut tier_keys: Vec<Ident> = Vec::new();
    for item in items {
        let (key, setting) = match item {
            Item::Slo(slo) => {
                args.slos.push(slo);
                continue;
            }
            Item::Trend(key, trend) => {
                if args.trends.iter().any(|t| t.metric == trend.metric) {
                    push(
                        errors,
                        syn::Error::new(key.span(), format!("`{key}` is bounded twice")),
                    );
                }
                args.trends.push(trend);
                continue;
            }
            Item::Setting(key, setting) => (key, setting),
        };
        let name = key.to_string();
        if seen.contains(&name) {
            push(
                errors,
                syn::Error::new(key.span(), format!("`{name}` is given twice")),
            );
            continue;
        }
        seen.push(name.clone());
        let model = match setting {
            Setting::Rate(rate) => Load::Open { rate },
            Setting::Users(users) => Load::Closed { users, think_ms: 0 },
            Setting::Stages(stages) => Load::Ramping { stages },
            Setting::Think(ms) => {
                think = Some((key, ms));
                continue;
            }
            Setting::MaxInFlight(n) => {
                max_in_flight = Some((key, n));
                continue;
            }
            Setting::Duration(ms) => {
                args.duration_ms = Some(ms);
                continue;
            }
            Setting::Warmup(ms) => {
                args.warmup_ms = Some(ms);
                continue;
            }
            Setting::Timeout(ms) => {
                args.timeout_ms = Some(ms);
                continue;
            }
            Setting::Regression(pct) => {
                args.regression_pct = Some(pct);
                continue;
            }
            Setting::CostRegression(pct) => {
                args.cost_regression_pct = Some(pct);
                continue;
            }
            Setting::Service(s) => {
                args.service = Some(s);
                continue;
            }
            Setting::Data(d) => {
                args.data = d;
                continue;
            }
            Setting::Tier(t) => {
                args.tiers_only = t;
                continue;
            }
            Setting::TierDuration(ms, warmup) => {
                args.tier_durations.push((name.clone(), ms, warmup));
                tier_keys.push(key);
                continue;
            }
        };
        match &load {
            Some((first, _)) => push(
                errors,
                syn::Error::new(
                    key.span(),
                    format!(
                        "`{name}` and `{first}` are mutually exclusive: a scenario has one load model \
                         (`rate` open, `stages` ramping open, or `users` closed)"
                    ),
                ),
            ),
            None => load = Some((key, model)),
        }
    }
    // A duration for a tier the scenario does not run in is a mistake worth saying.
    if !args.tiers_only.is_empty() {
        for key in &tier_keys {
            let name = key.to_string();
            if !args.tiers_only.contains(&name) {
                push(
                    errors,
                    syn::Error::new(
                        key.span(),
                        format!(
                            "`{name}` sets a duration for a tier this scenario does not run in (`tier = [{}]`)",
                            args.tiers_only
                                .iter()
                                .map(|t| format!("\"{t}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                );
            }
        }
    }
    let Some((_, mut model)) = load else {
        if load_written {
            return None;
        }
        push(
            errors,
            syn::Error::new(
                Span::call_site(),
                "missing load model: add one of `rate = N` (open model, iterations/s), `users = N` \
                 (closed model) or `stages = [(\"10s\", 100), ...]` (ramping open model)",
            ),
        );
        return None;
    };
    match &mut model {
        Load::Closed { think_ms, .. } => {
            if let Some((key, _)) = max_in_flight {
                push(
                    errors,
                    syn::Error::new(
                        key.span(),
                        "`max_in_flight` bounds the open models (`rate`, `stages`); with `users` the \
                         number of users is the bound",
                    ),
                );
            }
            *think_ms = think.map_or(0, |(_, ms)| ms);
        }
        Load::Open { .. } | Load::Ramping { .. } => {
            if let Some((key, _)) = think {
                push(
                    errors,
                    syn::Error::new(
                        key.span(),
                        "`think` applies only to the closed model (`users = N`)",
                    ),
                );
            }
            args.max_in_flight = max_in_flight.map(|(_, n)| n);
        }
    }
    if let Load::Ramping { stages } = &model {
        // Without an explicit `duration`, a ramp lasts as long as its stages.
        if args.duration_ms.is_none() {
            let total: u64 = stages.iter().map(|s| s.duration_ms).sum();
            if total == 0 {
                push(
                    errors,
                    syn::Error::new(
                        Span::call_site(),
                        "the stages last 0s in total: give them a duration",
                    ),
                );
            }
            args.duration_ms = Some(total);
        }
    }
    args.load = model;
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(src: &str) -> syn::Result<Args> {
        parse(src.parse().expect("test input lexes"))
    }

    fn ok(src: &str) -> Args {
        parse_str(src).unwrap_or_else(|e| panic!("{src:?} should parse, got: {e}"))
    }

    /// Each error's message and the text of `src` at which it starts.
    fn errors(src: &str) -> Vec<(String, String)> {
        let err = match parse_str(src) {
            Ok(args) => panic!("{src:?} should be rejected, got {args:?}"),
            Err(e) => e,
        };
        err.into_iter()
            .map(|e| {
                let at: String = src.chars().skip(e.span().start().column).collect();
                (e.to_string(), at)
            })
            .collect()
    }

    /// The single error of `src`, asserting it starts at `at` and its message contains each of `says`.
    fn error_at(src: &str, at: &str, says: &[&str]) {
        let all = errors(src);
        assert_eq!(all.len(), 1, "{src:?}: expected one error, got {all:#?}");
        let (message, found_at) = &all[0];
        assert!(
            found_at.starts_with(at),
            "{src:?}: error {message:?} points at {found_at:?}, expected {at:?}"
        );
        for s in says {
            assert!(
                message.contains(s),
                "{src:?}: message {message:?} should contain {s:?}"
            );
        }
    }

    fn slo(request: Option<&str>, metric: Metric, op: Op, threshold: f64) -> Slo {
        Slo {
            request: request.map(String::from),
            metric,
            op,
            threshold,
        }
    }

    #[test]
    fn every_setting_and_slo_form() {
        let args = ok(r#"
            rate = 300, duration = "20s", warmup = "3s", timeout = "1.5s", max_in_flight = 64,
            p99 < "40ms", p50 <= "8ms", max > "250us", mean >= "1m", p90 < "1h", p95 < "0.5ms",
            errors < "0.5%", throughput >= "100/s",
            pay.p99 < "20ms", p99.9 < "100ms", p999 < "90ms", pay.p99.9 > "1ms",
            "GET /items".p50 < "5ms",
            instructions < "150k", allocs < 40, alloc_bytes <= "16KiB", syscalls < 4.5,
            item.instructions < 12000, "GET /items".allocs < "1.5k",
            regression = "7.5%", cost_regression = "2%", service = "api",
            data = ["a.jsonl", "fixtures/b.jsonl"],
        "#);
        assert_eq!(
            args,
            Args {
                load: Load::Open { rate: 300.0 },
                duration_ms: Some(20_000),
                warmup_ms: Some(3_000),
                timeout_ms: Some(1_500),
                max_in_flight: Some(64),
                slos: vec![
                    slo(None, Metric::P99, Op::Lt, 40.0),
                    slo(None, Metric::P50, Op::Le, 8.0),
                    slo(None, Metric::Max, Op::Gt, 0.25),
                    slo(None, Metric::Mean, Op::Ge, 60_000.0),
                    slo(None, Metric::P90, Op::Lt, 3_600_000.0),
                    slo(None, Metric::P95, Op::Lt, 0.5),
                    slo(None, Metric::Errors, Op::Lt, 0.005),
                    slo(None, Metric::Throughput, Op::Ge, 100.0),
                    slo(Some("pay"), Metric::P99, Op::Lt, 20.0),
                    slo(None, Metric::P999, Op::Lt, 100.0),
                    slo(None, Metric::P999, Op::Lt, 90.0),
                    slo(Some("pay"), Metric::P999, Op::Gt, 1.0),
                    slo(Some("GET /items"), Metric::P50, Op::Lt, 5.0),
                    slo(None, Metric::Instructions, Op::Lt, 150_000.0),
                    slo(None, Metric::Allocs, Op::Lt, 40.0),
                    slo(None, Metric::AllocBytes, Op::Le, 16_384.0),
                    slo(None, Metric::Syscalls, Op::Lt, 4.5),
                    slo(Some("item"), Metric::Instructions, Op::Lt, 12_000.0),
                    slo(Some("GET /items"), Metric::Allocs, Op::Lt, 1_500.0),
                ],
                regression_pct: Some(7.5),
                cost_regression_pct: Some(2.0),
                service: Some("api".into()),
                data: vec!["a.jsonl".into(), "fixtures/b.jsonl".into()],
                tiers_only: vec![],
                tier_durations: vec![],
                trends: vec![],
            }
        );
    }

    #[test]
    fn tiers_and_trend_bounds() {
        let args = ok(r#"
            rate = 10, tier = ["nightly", "soak"], soak = "2h", nightly = "90s",
            rss_growth < "1MiB/h", fds_growth < 0, threads_growth <= "2/min", p99_drift < "10%/h",
        "#);
        assert_eq!(args.tiers_only, ["nightly", "soak"]);
        assert_eq!(
            args.tier_durations,
            [
                ("soak".to_string(), 7_200_000, None),
                ("nightly".to_string(), 90_000, None)
            ]
        );
        assert_eq!(
            ok(r#"rate = 1, soak = ("30m", "30s"), smoke = ("5s", "0s",)"#).tier_durations,
            [
                ("soak".to_string(), 1_800_000, Some(30_000)),
                ("smoke".to_string(), 5_000, Some(0))
            ]
        );
        assert_eq!(
            args.trends,
            [
                Trend {
                    metric: TrendMetric::RssGrowth,
                    allowance: Allowance::PerHour(1_048_576.0)
                },
                Trend {
                    metric: TrendMetric::FdsGrowth,
                    allowance: Allowance::PerHour(0.0)
                },
                Trend {
                    metric: TrendMetric::ThreadsGrowth,
                    allowance: Allowance::PerHour(120.0)
                },
                Trend {
                    metric: TrendMetric::P99Drift,
                    allowance: Allowance::PercentPerHour(10.0)
                },
            ]
        );
        assert!(args.slos.is_empty());
        assert_eq!(ok(r#"rate = 1, tier = "soak""#).tiers_only, ["soak"]);
        assert_eq!(ok(r#"rate = 1, smoke = "5s""#).tier_durations.len(), 1);
        assert_eq!(
            ok(r#"rate = 1, rss_growth < "5%/h", p99_drift < "2ms/min""#).trends[1].allowance,
            Allowance::PerHour(120.0)
        );
    }

    #[test]
    fn bad_tiers_and_trend_bounds_point_at_the_value() {
        error_at(
            r#"rate = 1, tier = ["nighly"]"#,
            "\"nighly\"",
            &[
                "unknown tier",
                "did you mean \"nightly\"",
                "smoke, nightly, soak",
            ],
        );
        error_at(r#"rate = 1, tier = []"#, "[]", &["at least one tier"]);
        error_at(
            r#"rate = 1, tier = ["soak", "soak"]"#,
            "\"soak\"]",
            &["listed twice"],
        );
        error_at("rate = 1, tier = soak", "soak", &["expected the tiers"]);
        error_at(
            r#"rate = 1, tier = ["nightly"], soak = "2h""#,
            "soak",
            &["does not run in", "\"nightly\""],
        );
        error_at(r#"rate = 1, soak = "2""#, "\"2\"", &["invalid duration"]);
        error_at(r#"rate = 1, soak = "0s""#, "\"0s\"", &["longer than 0"]);
        error_at(
            r#"rate = 1, soak = ("2h")"#,
            "(\"2h\")",
            &["its duration and warm-up there", "(\"2h\", \"10m\")"],
        );
        error_at(
            r#"rate = 1, soak = ("2h", "10m", "1s")"#,
            "\"1s\"",
            &["its duration and warm-up"],
        );
        error_at(
            r#"rate = 1, soak = ("2h", 10)"#,
            "10",
            &["expected a duration string for `soak`"],
        );
        error_at(
            r#"rate = 1, rss_growth < "1MiB""#,
            "\"1MiB\"",
            &["invalid allowance", "\"1MiB/h\""],
        );
        error_at(
            r#"rate = 1, rss_growth < "1Mb/h""#,
            "\"1Mb/h\"",
            &["invalid allowance"],
        );
        error_at(
            "rate = 1, fds_growth < 3",
            "3",
            &["needs a unit and a time", "\"10/h\""],
        );
        error_at(
            r#"rate = 1, fds_growth < "5%/h""#,
            "\"5%/h\"",
            &["invalid allowance", "count per hour"],
        );
        error_at(
            r#"rate = 1, p99_drift < "5/h""#,
            "\"5/h\"",
            &["invalid allowance", "\"5ms/h\""],
        );
        error_at(
            r#"rate = 1, rss_growth > "1MiB/h""#,
            ">",
            &["how fast `rss_growth` may rise"],
        );
        error_at(
            r#"rate = 1, pay.rss_growth < "1MiB/h""#,
            "rss_growth",
            &["whole service"],
        );
        error_at(
            r#"rate = 1, rss_growth < 0, rss_growth < "1MiB/h""#,
            "rss_growth < \"1MiB",
            &["bounded twice"],
        );
        error_at(
            "rate = 1, rss_growth",
            "rss_growth",
            &["expected a comparison"],
        );
        error_at(
            r#"rate = 1, rss_grwth < "1MiB/h""#,
            "rss_grwth",
            &["did you mean `rss_growth`?"],
        );
    }

    #[test]
    fn unset_settings_are_left_to_the_runtimes_defaults() {
        let args = ok("rate = 0.5");
        assert_eq!(args.load, Load::Open { rate: 0.5 });
        assert_eq!(
            (
                args.duration_ms,
                args.warmup_ms,
                args.timeout_ms,
                args.regression_pct,
                args.cost_regression_pct
            ),
            (None, None, None, None, None)
        );
        assert!(args.slos.is_empty() && args.data.is_empty() && args.service.is_none());
    }

    #[test]
    fn closed_model_with_and_without_think_time() {
        assert_eq!(
            ok(r#"users = 50, think = "100ms""#).load,
            Load::Closed {
                users: 50,
                think_ms: 100
            }
        );
        assert_eq!(
            ok("users = 1,").load,
            Load::Closed {
                users: 1,
                think_ms: 0
            }
        );
        assert_eq!(
            ok(r#"think = "0s", users = 3"#).load,
            Load::Closed {
                users: 3,
                think_ms: 0
            }
        );
    }

    #[test]
    fn stages_make_a_ramp_that_lasts_as_long_as_they_do() {
        let args = ok(r#"stages = [("10s", 100), ("30s", 500.5), ("5s", 0,),]"#);
        assert_eq!(
            args.load,
            Load::Ramping {
                stages: vec![
                    Stage {
                        duration_ms: 10_000,
                        target_rate: 100.0
                    },
                    Stage {
                        duration_ms: 30_000,
                        target_rate: 500.5
                    },
                    Stage {
                        duration_ms: 5_000,
                        target_rate: 0.0
                    },
                ]
            }
        );
        assert_eq!(args.duration_ms, Some(45_000));
        assert_eq!(
            ok(r#"stages = [("10s", 100)], duration = "1m""#).duration_ms,
            Some(60_000)
        );
        assert_eq!(
            ok(r#"stages = [("1s", 5)], max_in_flight = 2"#).max_in_flight,
            Some(2)
        );
    }

    #[test]
    fn error_and_throughput_thresholds_in_every_unit() {
        let args = ok(
            r#"rate = 1, errors < 0.005, errors <= "100%", errors < 0, throughput > 12.5, throughput > 3"#,
        );
        let thresholds: Vec<f64> = args.slos.iter().map(|s| s.threshold).collect();
        assert_eq!(thresholds, [0.005, 1.0, 0.0, 12.5, 3.0]);
        assert_eq!(ok(r#"data = "one.jsonl", rate = 1"#).data, ["one.jsonl"]);
    }

    #[test]
    fn unknown_key_lists_the_allowed_ones_and_suggests_the_closest() {
        error_at(
            r#"rate = 1, durration = "1s""#,
            "durration",
            &[
                "unknown key `durration`",
                "did you mean `duration`?",
                "max_in_flight",
                "data",
                "p99 < \"40ms\"",
            ],
        );
        let all = errors("rate = 1, fast");
        assert_eq!(all.len(), 1);
        assert!(
            all[0].1.starts_with("fast") && !all[0].0.contains("did you mean"),
            "{all:?}"
        );
        error_at("rate = 1, 42", "42", &["expected a setting", "regression"]);
    }

    #[test]
    fn bad_durations_point_at_the_string() {
        for bad in [r#""20 s""#, r#""20""#, r#""20sec""#, r#""1.s""#] {
            error_at(
                &format!("rate = 1, duration = {bad}"),
                bad,
                &["invalid duration", "\"1.5s\""],
            );
        }
        error_at(
            "rate = 1, warmup = 3",
            "3",
            &["expected a duration string for `warmup`"],
        );
        error_at(
            r#"rate = 1, timeout = "1.5ms""#,
            "\"1.5ms\"",
            &["whole number of milliseconds"],
        );
        error_at(r#"rate = 1, duration = "0s""#, "\"0s\"", &["longer than 0"]);
        error_at(r#"stages = [("ten", 1)]"#, "\"ten\"", &["invalid duration"]);
    }

    #[test]
    fn load_models_are_mutually_exclusive() {
        error_at(
            "rate = 10, users = 5",
            "users",
            &["`users` and `rate` are mutually exclusive"],
        );
        error_at(
            r#"users = 5, stages = [("1s", 1)]"#,
            "stages",
            &["`stages` and `users` are mutually exclusive"],
        );
        error_at(
            "rate = 10, rate = 5",
            "rate = 5",
            &["`rate` is given twice"],
        );
        error_at(
            r#"duration = "1s""#,
            "",
            &["missing load model", "rate = N", "users = N", "stages"],
        );
        assert_eq!(errors("").len(), 1);
    }

    #[test]
    fn settings_tied_to_a_load_model() {
        error_at(
            r#"rate = 10, think = "1s""#,
            "think",
            &["only to the closed model"],
        );
        error_at(
            r#"stages = [("1s", 1)], think = "1s""#,
            "think",
            &["only to the closed model"],
        );
        error_at(
            "users = 10, max_in_flight = 5",
            "max_in_flight",
            &["open models"],
        );
    }

    #[test]
    fn bad_numbers() {
        error_at("rate = 0", "0", &["greater than 0"]);
        error_at("rate = -3", "-3", &["greater than 0"]);
        error_at(r#"rate = "300""#, "\"300\"", &["a number greater than 0"]);
        error_at("users = 2.5", "2.5", &["whole number"]);
        error_at("users = 0", "0", &["whole number greater than 0"]);
        error_at("rate = 1, max_in_flight = -1", "-1", &["whole number"]);
        error_at("rate = 1, regression = 10", "10", &["\"10%\""]);
        error_at("rate =", "", &["expected a value after `rate =`"]);
        error_at("rate: 1", ":", &["expected `=`"]);
        error_at("rate = 1 2", "2", &["unexpected token"]);
        error_at("stages = []", "[]", &["at least one stage"]);
        error_at("stages = 100", "100", &["(duration, target rate)"]);
        error_at(r#"stages = [("1s", -1)]"#, "-1", &["cannot be negative"]);
        error_at(
            "stages = [(30, 500)]",
            "30",
            &["stage's duration as a string"],
        );
        error_at(
            r#"stages = [("1s", 1, 2)]"#,
            "2",
            &["(duration, target rate) pair"],
        );
        error_at(r#"rate = 1, service = """#, "\"\"", &["cannot be empty"]);
        error_at("rate = 1, data = [1]", "1", &["expected string literal"]);
        error_at("rate = 1, cost_regression = 2", "2", &["\"1%\""]);
        error_at(
            r#"rate = 1, instructions < "150q""#,
            "\"150q\"",
            &["count per iteration", "\"150k\""],
        );
        error_at("rate = 1, allocs < -1", "-1", &["cannot be negative"]);
        error_at(
            r#"rate = 1, alloc_bytes < "16""#,
            "\"16\"",
            &["bytes allocated per iteration", "KiB"],
        );
    }

    #[test]
    fn malformed_slos() {
        error_at(
            r#"rate = 1, p42 < "1ms""#,
            "p42",
            &["unknown metric `p42`", "p99.9", "throughput"],
        );
        error_at(
            r#"rate = 1, p99.5 < "1ms""#,
            "p99",
            &["unknown metric `p99.5`"],
        );
        error_at(
            r#"rate = 1, pay.latency < "1ms""#,
            "latency",
            &["unknown metric `latency`"],
        );
        error_at(
            r#"rate = 1, pay.p9 < "1ms""#,
            "p9",
            &["did you mean `p90`?"],
        );
        error_at(
            r#"rate = 1, pay. < "1ms""#,
            "<",
            &["expected a metric after `.`"],
        );
        error_at(
            r#"rate = 1, p99 = "40ms""#,
            "=",
            &["expected a comparison", "p99 < \"40ms\""],
        );
        error_at(
            r#"rate = 1, p99 == "40ms""#,
            "==",
            &["expected a comparison"],
        );
        error_at("rate = 1, p99", "p99", &["expected a comparison"]);
        error_at("rate = 1, p99 <", "p99", &["missing threshold"]);
        error_at("rate = 1, p99 < 40", "40", &["duration string with a unit"]);
        error_at(r#"rate = 1, p99 < "40""#, "\"40\"", &["invalid duration"]);
        error_at(r#"rate = 1, errors < "5""#, "\"5\"", &["\"0.5%\""]);
        error_at(r#"rate = 1, errors < "101%""#, "\"101%\"", &["at most"]);
        error_at("rate = 1, errors < 5", "5", &["between 0 and 1"]);
        error_at(r#"rate = 1, throughput > "100""#, "\"100\"", &["\"100/s\""]);
        error_at("rate = 1, throughput > -1", "-1", &["negative"]);
        error_at(
            r#"rate = 1, "GET /" < "1ms""#,
            "\"GET /\"",
            &["expected `.`"],
        );
    }

    #[test]
    fn every_bad_item_is_reported_at_once() {
        let all = errors(r#"durration = "1s", p99 < 40,, think = "x""#);
        let messages: Vec<&str> = all.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(messages.len(), 5, "{messages:#?}");
        assert!(messages[0].starts_with("unknown key"), "{messages:?}");
        assert!(messages[1].contains("unit"), "{messages:?}");
        assert!(messages[2].contains("before this comma"), "{messages:?}");
        assert!(messages[3].contains("invalid duration"), "{messages:?}");
        assert!(messages[4].contains("missing load model"), "{messages:?}");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(suggestion("rte"), Some("rate"));
        assert_eq!(suggestion("user"), Some("users"));
        assert_eq!(suggestion("thorughput"), Some("throughput"));
        assert_eq!(suggestion("zzzzzz"), None);
        assert_eq!(suggestion("p42"), None);
        assert_eq!(suggestion("p99.5"), Some("p99.9"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
