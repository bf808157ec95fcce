#!/usr/bin/env bash
# Calibrates perfgate's regression gate on this machine: how often an unchanged service fails the gate
# (false alarms, A/A) and how often a real slowdown is caught (detections, A/B), at the smoke budget.
#
#   scripts/calibrate.sh                 # 20 A/A runs and 20 runs with a 15% slower service
#   RUNS=30 SLOWDOWN=1.15 scripts/calibrate.sh
#   ROUNDS=10 SLOWDOWN=1.10 TOLERANCE=5% scripts/calibrate.sh   # a larger budget per PR run
#   scripts/calibrate.sh --ab            # the same-machine A/B mode: 20 A/A, 20 with 10% more work
#   BUDGET=60s TOLERANCE=5% scripts/calibrate.sh --ab
#   SERIES=ab scripts/calibrate.sh --ab  # only the slower branch (SERIES=aa: only the unchanged one;
#                                        # in every mode)
#   BUSY=2 scripts/calibrate.sh          # the A/A runs with two busy loops on the cores (the baseline
#                                        # is recorded without them): contention must not fail a PR
#   TAIL=1 BUSY_SLOW=1 scripts/calibrate.sh   # a tail-only change (+15% on the 2% slowest requests,
#                                        # p50 unchanged), the slower runs under one busy loop
#   BURST=1 SERIES=aa scripts/calibrate.sh --ab   # A/A with a CPU burst in one round of each run
#   CALIBRATE=1 scripts/calibrate.sh --ab   # `cargo perfgate calibrate` on main first (the floors)
#   TAIL=1 BUSY_SLOW=1 SERIES=ab scripts/calibrate.sh --ab   # the tail-only change under one busy loop
#                                        # (BUSY and BUSY_SLOW hold in --ab too: A/A and slower runs)
#   scripts/calibrate.sh --example       # --ab on examples/predict-service: a branch that computes each
#                                        # prediction twice, and an unchanged one
#
# Beside every run it prints the machine's load (`uptime`) and CPU pressure (/proc/pressure/cpu
# avg10): the figures mean little without them on a shared machine.
#
# --ab: the fixture becomes a git repository (main), with a branch that changes nothing and one that
# makes the service slower in code (its WORK_FACTOR, default 1.10: 10% more CPU work per request).
# Every run is `cargo perfgate work --ab --strict` on one of them: the merge-base's service is built
# from a worktree and both are measured here, interleaved, sampled until decided or the budget
# (BUDGET, default the product's 5m) is spent. The scenario declares `regression = TOLERANCE`
# (default 5%: a 10% slowdown cannot be told from a 10% tolerance).
#
# What it runs: the end-to-end fixture (cargo-perfgate/tests/fixtures/basic), scenario `work` (closed
# model, 2 users, 10 ms think time, 2 s measured after 300 ms warmup, as declared), whose service does
# FIXTURE_WORK_US microseconds of real CPU work per request (default 3000) times FIXTURE_SLOWDOWN.
# One baseline is recorded (`cargo perfgate record`, 10 rounds) to a temporary file; every run is then a
# default PR run against it (5 rounds, default GateOptions, the scenario's default 10% tolerance), with
# --strict so that an undecided run exits 3 instead of passing with a warning.
#
# Targets (the issue's): at most 1 false alarm in 20 A/A runs, at least 19 detections in 20.
# Exit status: 0 when both targets are met, 1 when not, 2 when a run errored.
set -euo pipefail

MODE=file
if [ "${1:-}" = "--ab" ]; then MODE=ab; fi
if [ "${1:-}" = "--example" ]; then MODE=example; fi
BUSY=${BUSY:-0}
BUSY_SLOW=${BUSY_SLOW:-0}
TAIL=${TAIL:-0}
BURST=${BURST:-0}
CALIBRATE=${CALIBRATE:-0}
SCENARIO=work
if [ "$TAIL" = 1 ]; then SCENARIO=tail; fi
TAIL_US=${TAIL_US:-3000}
RUNS=${RUNS:-20}
if [ $MODE = ab ] && [ "$TAIL" != 1 ]; then SLOWDOWN=${SLOWDOWN:-1.10}; else SLOWDOWN=${SLOWDOWN:-1.15}; fi
BUDGET=${BUDGET:-5m}
# The file mode keeps the scenario's declared tolerance (10%) unless TOLERANCE is set.
if [ $MODE = ab ] && [ "$TAIL" != 1 ]; then TOLERANCE=${TOLERANCE:-5%}; else TOLERANCE=${TOLERANCE:-}; fi
WORK_US=${WORK_US:-3000}
# File mode: rounds of each PR run (the product's default 5) and of the baseline (the product's 10).
ROUNDS=${ROUNDS:-5}
BASE_ROUNDS=${BASE_ROUNDS:-10}
# Re-record the baseline before every A/A run (slower, but each run then has a baseline of its own).
RERECORD=${RERECORD:-0}

root=$(cd "$(dirname "$0")/.." && pwd)
fixture_src="$root/cargo-perfgate/tests/fixtures/basic"
work=$(mktemp -d "${TMPDIR:-/tmp}/perfgate-calibrate.XXXXXX")
busy_pids=()
stop_busy() {
  for p in "${busy_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${busy_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  busy_pids=()
}
start_busy() {
  local n=$1
  for _ in $(seq 1 "$n"); do
    sh -c 'while :; do :; done' &
    busy_pids+=($!)
  done
}
trap 'stop_busy; rm -rf "$work"' EXIT
# The machine beside each figure: load averages and CPU pressure (some, avg10).
machine() {
  local la psi
  la=$(cut -d' ' -f1-3 /proc/loadavg)
  psi=$(sed -n 's/^some avg10=\([0-9.]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || true)
  echo "load $la, PSI ${psi:-n/a}%"
}

echo "building cargo-perfgate…" >&2
cargo build -q --manifest-path "$root/Cargo.toml" -p cargo-perfgate
bin="$root/target/debug/cargo-perfgate"

# The fixture as the e2e tests use it: a workspace of its own pointing at this checkout's runtime.
cp -R "$fixture_src" "$work/fx"
sed -i "s|@PERFGATE_RUNTIME_PATH@|$root/perfgate-runtime|" "$work/fx/Cargo.toml"
cp "$root/Cargo.lock" "$work/fx/Cargo.lock"
export CARGO_TARGET_DIR="$root/target/perfgate-calibrate"
export GIT_CEILING_DIRECTORIES="$work"
export FIXTURE_WORK_US="$WORK_US"
unset FIXTURE_SLOWDOWN FIXTURE_DELAY_MS FIXTURE_TAIL_SLOWDOWN FIXTURE_BURST_FILE GITHUB_BASE_REF CI_MERGE_REQUEST_TARGET_BRANCH_NAME || true
if [ "$TAIL" = 1 ]; then
  # The issue's service: 500 requests/s, 2% of them burning TAIL_US of CPU, the rest nothing.
  export FIXTURE_TAIL_US="$TAIL_US"
  # BURST=1: the burst 2 s into the first round's measured 4 s (after 0.5 s of warm-up at 500/s).
  export FIXTURE_BURST_AT=${FIXTURE_BURST_AT:-1250}
  cat >>"$work/fx/tests/perf.rs" <<'RS'

/// A 2% CPU-bound tail at 500 requests/s (scripts/calibrate.sh TAIL=1).
#[perf_test(rate = 500, duration = "4s", warmup = "500ms", errors < "1%")]
async fn tail(ctx: Ctx) -> perfgate_runtime::Result {
    ctx.get("/tail").send().await?.expect_status(200)?;
    Ok(())
}
RS
fi

pg() {
  "$bin" perfgate "$@" --manifest-path "$work/fx/Cargo.toml" --color never -q
}

set_tolerance() {
  sed -i -e "s|^#\[perf_test(users = 2, think = \"10ms\"|#[perf_test(regression = \"$TOLERANCE\", users = 2, think = \"10ms\"|" \
    -e "s|^#\[perf_test(rate = 500,|#[perf_test(regression = \"$TOLERANCE\", rate = 500,|" \
    "$work/fx/tests/perf.rs"
  grep -q "regression = \"$TOLERANCE\"" "$work/fx/tests/perf.rs" || { echo "calibrate: could not set the tolerance" >&2; exit 2; }
}
if [ -n "$TOLERANCE" ]; then set_tolerance; fi

if [ $MODE = example ]; then
  # A copy of this repository as a git repository of its own: main, a branch that computes each
  # prediction twice (a real +100% of the model's work, p50 ~0.2-0.8 ms), and one that changes nothing.
  repo="$work/repo"
  mkdir -p "$repo"
  git -C "$root" ls-files -z | (cd "$root" && xargs -0 tar cf -) | tar xf - -C "$repo"
  g() { git -C "$repo" -c user.name=calibrate -c user.email=calibrate@localhost "$@"; }
  g init -q -b main
  g add -A
  g commit -q -m "perfgate"
  g checkout -q -b unchanged
  echo "nothing that runs" >"$repo/NOTES.md"
  g add -A
  g commit -q -m "notes only"
  g checkout -q main
  g checkout -q -b twice
  routes="$repo/examples/predict-service/src/routes.rs"
  python3 - "$routes" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
old = "    } else {\n        let p = state.model.predict(&text);\n        (text, p)\n    };"
new = "    } else {\n        std::hint::black_box(state.model.predict(&text));\n        let p = state.model.predict(&text);\n        (text, p)\n    };"
assert old in s, "the example's predict call moved"
open(p, "w").write(s.replace(old, new))
PY
  g commit -q -am "compute each prediction twice"
  pge() {
    "$bin" perfgate "$@" --manifest-path "$repo/Cargo.toml" --color never -q
  }
  ex_series() {
    local label=$1 branch=$2
    local pass=0 fail=0 inconc=0 other=0 rc
    g checkout -q "$branch"
    for i in $(seq 1 "$RUNS"); do
      local before
      before=$(machine)
      set +e
      pge ::predict -p predict-service --ab --strict --budget "$BUDGET" >"$work/run.log" 2>&1
      rc=$?
      set -e
      case $rc in
        0) pass=$((pass + 1)) ;;
        1) fail=$((fail + 1)) ;;
        3) inconc=$((inconc + 1)) ;;
        *) other=$((other + 1)); echo "--- $label run $i exited $rc:" >&2; tail -20 "$work/run.log" >&2 ;;
      esac
      printf '%s run %2d/%d: exit %d (before: %s; after: %s)\n' "$label" "$i" "$RUNS" "$rc" "$before" "$(machine)" >&2
      grep -E 'regressed|pairs of rounds' "$work/run.log" >&2 || true
    done
    echo "$pass $fail $inconc $other"
  }
  aa_pass=0 aa_fail=0 aa_inc=0 aa_err=0 ab_pass=0 ab_fail=0 ab_inc=0 ab_err=0
  if [ "${SERIES:-both}" != ab ]; then
    read -r aa_pass aa_fail aa_inc aa_err < <(ex_series "A/A" unchanged)
  fi
  if [ "${SERIES:-both}" != aa ]; then
    read -r ab_pass ab_fail ab_inc ab_err < <(ex_series "twice" twice)
  fi
  echo
  echo "perfgate --ab on predict-service::predict, budget $BUDGET, --strict, $(nproc) cores"
  printf 'A/A (unchanged):        %2d pass, %2d FAIL (false alarms), %2d inconclusive, %d errors of %d\n' \
    "$aa_pass" "$aa_fail" "$aa_inc" "$aa_err" "$RUNS"
  printf 'each prediction twice:  %2d FAIL (detections), %2d pass, %2d inconclusive, %d errors of %d\n' \
    "$ab_fail" "$ab_pass" "$ab_inc" "$ab_err" "$RUNS"
  if [ "$aa_err" -gt 0 ] || [ "$ab_err" -gt 0 ]; then exit 2; fi
  exit 0
fi

if [ $MODE = ab ]; then
  fx="$work/fx"
  g() { git -C "$fx" -c user.name=calibrate -c user.email=calibrate@localhost "$@"; }
  g init -q -b main
  g add -A
  g commit -q -m "fixture"
  if [ "$CALIBRATE" = 1 ]; then
    # The machine's noise floors, committed on main: every run's --ab holds a check to the larger of
    # its tolerance and the change the budget resolves here.
    echo "calibrating ($(machine))…" >&2
    if ! pg calibrate "$SCENARIO" >"$work/calibrate.log" 2>&1; then
      cat "$work/calibrate.log" >&2
      echo "calibrate: cargo perfgate calibrate failed" >&2
      exit 2
    fi
    sed -n '/resolves/,$p' "$work/calibrate.log" >&2
    g add -A
    g commit -q -m "calibration"
  fi
  g checkout -q -b unchanged
  echo "nothing that runs" >"$fx/NOTES.md"
  g add -A
  g commit -q -m "notes only"
  g checkout -q main
  g checkout -q -b slower
  factor=WORK_FACTOR
  if [ "$TAIL" = 1 ]; then factor=TAIL_FACTOR; fi
  sed -i "s/const $factor: f64 = 1.0;/const $factor: f64 = $SLOWDOWN;/" "$fx/src/main.rs"
  grep -q "$factor: f64 = $SLOWDOWN;" "$fx/src/main.rs" || { echo "calibrate: could not set $factor" >&2; exit 2; }
  g commit -q -am "work factor $SLOWDOWN"
  export GIT_CEILING_DIRECTORIES="$work"

  ab_series() {
    local label=$1 branch=$2
    local pass=0 fail=0 inconc=0 other=0 rc pairs=0
    g checkout -q "$branch"
    local busy=$BUSY_SLOW
    if [ "$label" = "A/A" ]; then busy=$BUSY; fi
    for i in $(seq 1 "$RUNS"); do
      local before
      start_busy "$busy"
      before=$(machine)
      set +e
      if [ "$BURST" = 1 ] && [ "$label" = "A/A" ]; then
        rm -f "$work/burst"
        FIXTURE_BURST_FILE="$work/burst" pg "$SCENARIO" --ab --strict --budget "$BUDGET" >"$work/run.log" 2>&1
      else
        pg "$SCENARIO" --ab --strict --budget "$BUDGET" >"$work/run.log" 2>&1
      fi
      rc=$?
      set -e
      local after
      after=$(machine)
      stop_busy
      case $rc in
        0) pass=$((pass + 1)) ;;
        1) fail=$((fail + 1)) ;;
        3) inconc=$((inconc + 1)) ;;
        *) other=$((other + 1)); echo "--- $label run $i exited $rc:" >&2; tail -20 "$work/run.log" >&2 ;;
      esac
      local n
      n=$(grep -oE '[0-9]+ pairs? of rounds' "$work/run.log" | head -1 | cut -d' ' -f1)
      pairs=$((pairs + ${n:-0}))
      printf '%s run %2d/%d: exit %d after %s pairs, %d busy loops (before: %s; after: %s)\n' "$label" "$i" "$RUNS" "$rc" "${n:-?}" "$busy" "$before" "$after" >&2
      grep -E 'regressed|pairs of rounds' "$work/run.log" >&2 || true
    done
    echo "$pass $fail $inconc $other $pairs"
  }
  # SERIES=aa or SERIES=ab runs one series only (the other reads as 0 runs).
  aa_pass=0 aa_fail=0 aa_inc=0 aa_err=0 aa_pairs=0 ab_pass=0 ab_fail=0 ab_inc=0 ab_err=0 ab_pairs=0
  if [ "${SERIES:-both}" != ab ]; then
    read -r aa_pass aa_fail aa_inc aa_err aa_pairs < <(ab_series "A/A" unchanged)
  fi
  if [ "${SERIES:-both}" != aa ]; then
    read -r ab_pass ab_fail ab_inc ab_err ab_pairs < <(ab_series "A/B" slower)
  fi
  echo
  echo "perfgate --ab calibration on $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs || uname -m), $(nproc) cores"
  echo "scenario fixture-svc::$SCENARIO, ${WORK_US}us of CPU work per request, regression = \"$TOLERANCE\", budget $BUDGET, --strict"
  series=${SERIES:-both}
  if [ "$series" != ab ]; then
    printf 'A/A (unchanged):        %2d pass, %2d FAIL (false alarms), %2d inconclusive, %d errors of %d; %s pairs per run on average\n' \
      "$aa_pass" "$aa_fail" "$aa_inc" "$aa_err" "$RUNS" "$((aa_pairs / RUNS))"
  fi
  if [ "$series" != aa ]; then
    printf 'A/B (x%s work):       %2d FAIL (detections), %2d pass, %2d inconclusive, %d errors of %d; %s pairs per run on average\n' \
      "$SLOWDOWN" "$ab_fail" "$ab_pass" "$ab_inc" "$ab_err" "$RUNS" "$((ab_pairs / RUNS))"
  fi
  if [ "$aa_err" -gt 0 ] || [ "$ab_err" -gt 0 ]; then exit 2; fi
  # Only the series that ran are judged (the targets as rates: <= 1 in 20, >= 19 in 20).
  aa_ok=1 ab_ok=1
  if [ "$series" != ab ] && [ $((aa_fail * 20)) -gt "$RUNS" ]; then aa_ok=0; fi
  if [ "$series" != aa ] && [ $((ab_fail * 20)) -lt $((RUNS * 19)) ]; then ab_ok=0; fi
  if [ $aa_ok = 1 ] && [ $ab_ok = 1 ]; then
    case $series in
      aa) echo "target met: <= 1 false alarm in 20" ;;
      ab) echo "target met: >= 19 detections in 20" ;;
      *) echo "targets met: <= 1 false alarm in 20, >= 19 detections in 20" ;;
    esac
    exit 0
  fi
  echo "targets NOT met: want <= 1 false alarm in 20 and >= 19 detections in 20"
  exit 1
fi

base="$work/base.toml"
record() {
  rm -f "$base"
  if ! pg record "$SCENARIO" --rounds "$BASE_ROUNDS" --baseline-file "$base" >"$work/record.log" 2>&1; then
    cat "$work/record.log" >&2
    echo "calibrate: recording the baseline failed" >&2
    exit 2
  fi
}

echo "recording the baseline ($BASE_ROUNDS rounds; $(machine))…" >&2
record
grep -E 'runnable_per_core =' "$base" | head -"$BASE_ROUNDS" | tr '\n' ' ' >&2
echo >&2

# Runs the gate RUNS times; prints "pass fail inconclusive other".
series() {
  local label=$1 slowdown=$2
  local pass=0 fail=0 inconc=0 other=0 rc gate=0
  for i in $(seq 1 "$RUNS"); do
    if [ "$label" = "A/A" ] && [ "$RERECORD" = 1 ]; then record; fi
    local busy=$BUSY_SLOW before
    if [ "$label" = "A/A" ]; then busy=$BUSY; fi
    start_busy "$busy"
    before=$(machine)
    set +e
    if [ "$TAIL" = 1 ]; then
      FIXTURE_TAIL_SLOWDOWN="$slowdown" pg "$SCENARIO" --strict --rounds "$ROUNDS" --baseline-file "$base" >"$work/run.log" 2>&1
    else
      FIXTURE_SLOWDOWN="$slowdown" pg "$SCENARIO" --strict --rounds "$ROUNDS" --baseline-file "$base" >"$work/run.log" 2>&1
    fi
    rc=$?
    set -e
    local after
    after=$(machine)
    stop_busy
    case $rc in
      0) pass=$((pass + 1)) ;;
      1) fail=$((fail + 1)) ;;
      3) inconc=$((inconc + 1)) ;;
      *) other=$((other + 1)); echo "--- $label run $i exited $rc:" >&2; tail -20 "$work/run.log" >&2 ;;
    esac
    # A failure by a regression check (the gate), as opposed to an absolute SLO alone.
    if [ $rc = 1 ] && grep -q 'regressed —' "$work/run.log"; then gate=$((gate + 1)); fi
    printf '%s run %2d/%d: exit %d, %d busy loops (before: %s; after: %s)\n' "$label" "$i" "$RUNS" "$rc" "$busy" "$before" "$after" >&2
    if [ $rc = 1 ] && [ "$label" = "A/A" ]; then grep -E 'regressed|✗' "$work/run.log" >&2 || true; fi
    grep -E 'the machine per round|oversubscribed' "$work/run.log" >&2 || true
  done
  echo "$pass $fail $inconc $other $gate"
}

# SERIES=aa or SERIES=ab runs one series only (the other reads as 0 runs and is not judged).
series_set=${SERIES:-both}
aa_pass=0 aa_fail=0 aa_inc=0 aa_err=0 aa_gate=0 ab_pass=0 ab_fail=0 ab_inc=0 ab_err=0 ab_gate=0
if [ "$series_set" != ab ]; then
  read -r aa_pass aa_fail aa_inc aa_err aa_gate < <(series "A/A" 1.0)
fi
if [ "$series_set" != aa ]; then
  read -r ab_pass ab_fail ab_inc ab_err ab_gate < <(series "A/B" "$SLOWDOWN")
fi

echo
echo "perfgate gate calibration on $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs || uname -m), $(nproc) cores"
echo "scenario fixture-svc::$SCENARIO, ${WORK_US}us of CPU work per request (tail: $TAIL), regression = ${TOLERANCE:-10% (declared)}, baseline $BASE_ROUNDS rounds, runs $ROUNDS rounds, --strict; busy loops: $BUSY during A/A, $BUSY_SLOW during the slower runs"
printf 'A/A (unchanged):        %2d pass, %2d FAIL (%d by a regression check: false alarms; the rest by an SLO), %2d inconclusive, %d errors of %d\n' \
  "$aa_pass" "$aa_fail" "$aa_gate" "$aa_inc" "$aa_err" "$RUNS"
printf 'A/B (x%s slower%s):     %2d FAIL (%d by a regression check: detections), %2d pass, %2d inconclusive, %d errors of %d\n' \
  "$SLOWDOWN" "$([ "$TAIL" = 1 ] && echo ', tail only')" "$ab_fail" "$ab_gate" "$ab_pass" "$ab_inc" "$ab_err" "$RUNS"

if [ "$aa_err" -gt 0 ] || [ "$ab_err" -gt 0 ]; then exit 2; fi
# Targets scaled to RUNS: false alarms <= RUNS/20, detections >= RUNS*19/20.
aa_ok=1 ab_ok=1
if [ "$series_set" != ab ] && [ $((aa_gate * 20)) -gt "$RUNS" ]; then aa_ok=0; fi
if [ "$series_set" != aa ] && [ $((ab_gate * 20)) -lt $((RUNS * 19)) ]; then ab_ok=0; fi
if [ $aa_ok = 1 ] && [ $ab_ok = 1 ]; then
  echo "targets met: <= 1 false alarm in 20, >= 19 detections in 20 (of the series run: $series_set)"
  exit 0
fi
echo "targets NOT met: want <= 1 false alarm in 20 and >= 19 detections in 20"
exit 1
