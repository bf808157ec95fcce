#!/usr/bin/env bash
# The cost gate on this machine: false alarms of unchanged code (A/A) and detections of small changes
# in code, in file mode (a committed baseline of cost figures) and with --ab, half of the runs with
# a busy loop on every core.
#
#   scripts/calibrate-cost.sh                               # everything below, RUNS=20 per series
#   SUBJECTS=fixture MODES=file SERIES="aa alloc" RUNS=5 scripts/calibrate-cost.sh
#
# Subjects: `fixture` (cargo-perfgate/tests/fixtures/basic, scenario `work`: fixed work in code per
# request, WORK_ROUNDS and EXTRA_ALLOCS) and `example` (this repository's predict-service, all three
# scenarios, against a cost baseline recorded on main first; EXAMPLE_BASELINE=committed keeps the
# repository's committed perfgate.baseline.toml instead, which measures how stale it is as well).
# Each becomes a git repository (main) with three branches: `unchanged` (a note), `instr` (+2%
# instructions per request in code: the fixture's
# burn() does more rounds, predict-service's /predict an extra loop) and `alloc` (+1 allocation per
# request). Every run is `cargo perfgate --cost-only` (no load: the cost checks alone) on one branch,
# file mode against the baseline committed on main, or --ab (the merge-base built and measured too).
#
# Outcome of a run: FAIL (a cost check regressed), inconclusive (none failed, one could not be
# decided), pass; or ERROR (exit 2). For `aa` a FAIL is a false alarm; for `instr` and `alloc` a FAIL
# of the changed check (predict's or work's instructions, allocs) is a detection.
# Targets: 0 false alarms in the A/A runs, 20/20 detections.
# The log is target/calibrate-cost.log; the results documents of runs that errored go to its .errors
# file, those of runs with another outcome than their series expects to its .unexpected file.
# Exit status: 0 when the targets are met, 1 when not, 2 when a run errored.
set -euo pipefail

RUNS=${RUNS:-20}
SUBJECTS=${SUBJECTS:-"fixture example"}
MODES=${MODES:-"file ab"}
SERIES=${SERIES:-"aa instr alloc"}
EXAMPLE_BASELINE=${EXAMPLE_BASELINE:-fresh}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/perfgate-calibrate-cost.XXXXXX")
hogs=()
hog_stop() {
  for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${hogs[@]}"; do wait "$p" 2>/dev/null || true; done
  hogs=()
}
trap 'hog_stop; rm -rf "$work"' EXIT
hog_start() {
  for _ in $(seq "$(nproc)"); do
    (while :; do :; done) &
    hogs+=($!)
  done
}

command -v valgrind >/dev/null || { echo "calibrate-cost: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
echo "building cargo-perfgate…" >&2
cargo build -q --manifest-path "$root/Cargo.toml" -p cargo-perfgate
bin="$root/target/debug/cargo-perfgate"
export CARGO_TARGET_DIR="$root/target/perfgate-calibrate-cost"
export GIT_CEILING_DIRECTORIES="$work"
unset GITHUB_BASE_REF CI_MERGE_REQUEST_TARGET_BRANCH_NAME FIXTURE_WORK_US FIXTURE_SLOWDOWN || true

g() { git -C "$1" -c user.name=calibrate -c user.email=calibrate@localhost "${@:2}"; }

# One run's summary from its results document (stdout of --message-format json):
# "<outcome> <scenario>:<check>=<change>% …" for the cost checks, `!` after a failed one, `?` after
# one that could not be decided.
summarise() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
worst, parts = "pass", []
for s in r["scenarios"]:
    for d in s.get("regressions", []):
        if d["metric"] not in ("instructions", "allocs", "alloc_bytes", "syscalls"):
            continue
        o = d["outcome"]
        if o == "fail":
            worst = "FAIL"
        elif o in ("inconclusive", "notcomparable") and worst == "pass":
            worst = "inconclusive"
        name = s["id"].split("::")[-1] + ":" + (d["request"] + "." if d["request"] else "") + d["metric"]
        c = d.get("change")
        parts.append("%s=%s%s" % (name, "%+.3f%%" % (c * 100) if c is not None else "-", {"fail": "!", "inconclusive": "?", "notcomparable": "?"}.get(o, "")))
    c = s.get("cost")
    if c:
        parts.append("%s:secs=%.1f,window=%.2f" % (s["id"].split("::")[-1], c["secs"], c["window_secs"]))
if r["exit_code"] == 2:
    worst = "ERROR"
print(worst, "cost_secs=%.1f" % r.get("cost_secs", 0), " ".join(parts))
'
}

# A subject's repository: fixture or example, with its branches and a committed cost baseline.
setup_fixture() {
  local fx="$work/fixture"
  cp -R "$root/cargo-perfgate/tests/fixtures/basic" "$fx"
  sed -i "s|@PERFGATE_RUNTIME_PATH@|$root/perfgate-runtime|" "$fx/Cargo.toml"
  cp "$root/Cargo.lock" "$fx/Cargo.lock"
  echo "target/" >"$fx/.gitignore"
  g "$fx" init -q -b main
  g "$fx" add -A
  g "$fx" commit -q -m fixture
  "$bin" perfgate record work --cost-only --manifest-path "$fx/Cargo.toml" --color never -q >/dev/null
  g "$fx" add perfgate.baseline.toml
  g "$fx" commit -q -m "cost baseline"
  # Instructions per burn() round, measured: main's figure against 1000 rounds more.
  local base more per rounds
  base=$(python3 -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["scenarios"]["fixture-svc::work"]["cost"]["instructions"])' "$fx/perfgate.baseline.toml")
  branch "$fx" probe 's/const WORK_ROUNDS: u64 = 2000;/const WORK_ROUNDS: u64 = 3000;/' src/main.rs
  more=$( ("$bin" perfgate work --cost-only --manifest-path "$fx/Cargo.toml" --color never -q --message-format json --base main || true) \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["scenarios"][0]["cost"]["figures"]["instructions"])')
  per=$(python3 -c "print(($more - $base) / 1000)")
  rounds=$(python3 -c "import math; print(2000 + math.ceil(0.02 * $base / $per))")
  echo "fixture: $base instructions per request, $per per burn() round: +2% is WORK_ROUNDS = $rounds" >&2
  branch "$fx" unchanged "" NOTES.md
  branch "$fx" instr "s/const WORK_ROUNDS: u64 = 2000;/const WORK_ROUNDS: u64 = $rounds;/" src/main.rs
  branch "$fx" alloc 's/const EXTRA_ALLOCS: usize = 0;/const EXTRA_ALLOCS: usize = 1;/' src/main.rs
  g "$fx" checkout -q main
}

setup_example() {
  local ex="$work/example"
  git clone -q "$root" "$ex"
  g "$ex" checkout -q -B main
  [ -f "$ex/perfgate.baseline.toml" ] || { echo "calibrate-cost: the example has no committed baseline" >&2; exit 2; }
  if [ "$EXAMPLE_BASELINE" = fresh ]; then
    # The committed figures are those of the sources they were recorded from: any later change to
    # the example or the runtime shows in every run, unchanged branch or not.
    "$bin" perfgate record predict-service:: -p predict-service --cost-only --manifest-path "$ex/Cargo.toml" --color never -q >/dev/null
    g "$ex" add perfgate.baseline.toml
    g "$ex" diff --cached --quiet || g "$ex" commit -q -m "cost baseline of these sources"
  fi
  local routes=examples/predict-service/src/routes.rs
  # +2% of a prediction's instructions, in a function of its own: the loop's cost per round is what
  # the compiler makes of it, so it is measured (main's figure against 2,000 rounds).
  local base more per rounds
  base=$(python3 -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["scenarios"]["predict-service::predict"]["cost"]["instructions"])' "$ex/perfgate.baseline.toml")
  extra_work probe 2000
  more=$( ("$bin" perfgate predict-service::predict -p predict-service --cost-only --manifest-path "$ex/Cargo.toml" --color never -q --message-format json --base main || true) \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["scenarios"][0]["cost"]["figures"]["instructions"])')
  per=$(python3 -c "print(($more - $base) / 2000)")
  rounds=$(python3 -c "import math; print(math.ceil(0.02 * $base / $per))")
  echo "example: $base instructions per /predict, $per per extra_work() round: +2% is $rounds rounds" >&2
  branch "$ex" unchanged "" NOTES.md
  extra_work instr "$rounds"
  branch "$ex" alloc 's|^    let resp = json_response($|    std::hint::black_box(Vec::<u8>::with_capacity(64));\n    let resp = json_response(|' "$routes"
  g "$ex" checkout -q main
}

# extra_work NAME ROUNDS: a branch of the example whose /predict runs a loop of ROUNDS rounds more.
extra_work() {
  branch "$work/example" "$1" 's|^    let resp = json_response($|    std::hint::black_box(extra_work(std::hint::black_box('"$2"')));\n    let resp = json_response(|' \
    examples/predict-service/src/routes.rs \
    'fn item(state' '#[inline(never)]\nfn extra_work(n: u64) -> u64 {\n    (0..n).fold(7u64, \|a, i\| a.wrapping_mul(31).wrapping_add(i))\n}\n\nfn item(state'
}

# branch REPO NAME SED FILE [FROM TO]: a branch off main with FILE edited by SED (and FROM → TO).
branch() {
  local repo=$1 name=$2 expr=$3 file=$4
  g "$repo" checkout -q main
  g "$repo" checkout -q -b "$name"
  if [ -n "$expr" ]; then
    sed -i "$expr" "$repo/$file"
    # The edit itself must match: a pattern gone stale after a change of the sources would leave
    # the branch without its change (or with only the helper added beside it).
    g "$repo" diff --quiet && { echo "calibrate-cost: the edit of branch $name matched nothing in $file" >&2; exit 2; }
    if [ $# -ge 6 ]; then
      python3 - "$repo/$file" "$5" "$6" <<'PY'
import sys
p, a, b = sys.argv[1], sys.argv[2], sys.argv[3].replace("\\n", "\n").replace("\\|", "|")
s = open(p).read()
assert a in s, a
open(p, "w").write(s.replace(a, b, 1))
PY
    fi
    g "$repo" diff --quiet && { echo "calibrate-cost: branch $name of $repo changed nothing" >&2; exit 2; }
  else
    echo "nothing that runs" >"$repo/$file"
  fi
  g "$repo" add "$file"
  g "$repo" commit -q -m "$name"
}

declare -A manifest filter
for subject in $SUBJECTS; do
  case $subject in
    fixture) setup_fixture; manifest[fixture]="$work/fixture/Cargo.toml"; filter[fixture]="work" ;;
    example) setup_example; manifest[example]="$work/example/Cargo.toml"; filter[example]="predict-service::" ;;
    # -p: the example's workspace also holds perfgate's own crates.
    *) echo "calibrate-cost: unknown subject $subject" >&2; exit 2 ;;
  esac
done

log="$root/target/calibrate-cost.log"
: >"$log"
status=0
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(valgrind --version); load: $(uptime | sed 's/.*load/load/')" | tee -a "$log"
for subject in $SUBJECTS; do
  repo=$(dirname "${manifest[$subject]}")
  for mode in $MODES; do
    for series in $SERIES; do
      case $series in aa) br=unchanged ;; *) br=$series ;; esac
      g "$repo" checkout -q "$br"
      fails=0 passes=0 undecided=0 errors=0
      for i in $(seq "$RUNS"); do
        hogged=quiet
        if [ $((i % 2)) = 0 ]; then hog_start; hogged=hog; fi
        args=(perfgate "${filter[$subject]}" --cost-only --base main --manifest-path "${manifest[$subject]}" --color never -q --message-format json)
        [ "$subject" = example ] && args+=(-p predict-service)
        [ "$mode" = ab ] && args+=(--ab)
        started=$(date +%s.%N)
        set +e
        out=$("$bin" "${args[@]}" 2>>"$log.stderr")
        set -e
        hog_stop
        secs=$(python3 -c "import time; print('%.1f' % (time.time() - $started))")
        line=$(printf '%s' "$out" | summarise 2>/dev/null || echo "ERROR (no results)")
        echo "$subject $mode $series run $i ($hogged, ${secs}s): $line" | tee -a "$log"
        # For a later look: the whole results document of a run that errored, and of one whose outcome
        # was not the series' expected one (an A/A run that did not pass, a change not caught).
        expected=FAIL
        [ "$series" = aa ] && expected=pass
        [ "${line%% *}" = ERROR ] && printf '%s: %s\n' "$subject $mode $series run $i" "$out" >>"$log.errors"
        [ "${line%% *}" != ERROR ] && [ "${line%% *}" != $expected ] \
          && printf '%s: %s\n' "$subject $mode $series run $i" "$out" >>"$log.unexpected"
        case ${line%% *} in
          FAIL) fails=$((fails + 1)) ;;
          pass) passes=$((passes + 1)) ;;
          inconclusive) undecided=$((undecided + 1)) ;;
          *) errors=$((errors + 1)) ;;
        esac
      done
      echo "== $subject $mode $series: $fails FAIL, $passes pass, $undecided inconclusive, $errors error of $RUNS" | tee -a "$log"
      if [ "$errors" -gt 0 ]; then status=2; fi
      if [ "$series" = aa ] && [ "$fails" -gt 0 ] && [ $status -ne 2 ]; then status=1; fi
      if [ "$series" != aa ] && [ "$fails" -lt "$RUNS" ] && [ $status -ne 2 ]; then status=1; fi
    done
  done
done
echo "log: $log" >&2
exit $status
