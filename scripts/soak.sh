#!/usr/bin/env bash
# The soak tier on this machine: how often the leak check fails a service that leaks, how often it
# raises an alarm on one that does not, and whether the load generator itself stays flat.
#
#   scripts/soak.sh leak              # 20 soaks of predict-service with PREDICT_LEAK=1
#   scripts/soak.sh flat              # 20 soaks without it
#   scripts/soak.sh generator         # one `sustained_routing` soak: 1,000 req/s for 30 minutes
#   RUNS=5 DURATION=2m WARMUP=15s ABORT=1 scripts/soak.sh leak   # with early stops on
#
# leak / flat: each run is `cargo perfgate -p predict-service --tier soak --duration DURATION
# --warmup WARMUP --no-abort ::predict` (open model, 200 routing requests/s; ABORT=1 drops
# --no-abort, so a certain leak stops the run at a look). One line per run: the exit code, the load
# average, and each leak check's outcome with its slope and 99% interval per hour; then the counts.
# Target (the issue's): with the leak, the RSS check fails in every run; without it, no leak check
# fails in any run.
#
# generator: the scenario process's own resident memory at 1 minute and at 30 minutes into its
# round (the issue's target: within 5%), its CPU over the first and the last minute, and the
# service's leak checks; the results document is kept in target/soak-generator.json.
#
# Every run is bounded (`timeout`), and the sources are a snapshot of HEAD built in a target dir of
# their own (SNAPSHOT, default target/soak-snapshot; SOAK_TARGET for a second series beside the
# first), so edits made while a series runs cannot change it. The machine's load average is
# recorded beside every figure.
set -euo pipefail

MODE=${1:-}
case "$MODE" in
leak | flat | generator) ;;
*)
    echo "usage: scripts/soak.sh leak|flat|generator" >&2
    exit 2
    ;;
esac
RUNS=${RUNS:-20}
DURATION=${DURATION:-2m}
WARMUP=${WARMUP:-15s}
ABORT=${ABORT:-0}

root=$(cd "$(dirname "$0")/.." && pwd)
snap=${SNAPSHOT:-$root/target/soak-snapshot}
if [ ! -d "$snap/src" ]; then
    echo "snapshot of HEAD in $snap/src…" >&2
    mkdir -p "$snap/src"
    git -C "$root" archive HEAD | tar -x -C "$snap/src"
fi
# SOAK_TARGET: another target dir for the same snapshot, so that series can run side by side (each
# run holds its target dir's run lock).
export CARGO_TARGET_DIR="${SOAK_TARGET:-$snap/target}"
echo "building cargo-perfgate…" >&2
cargo build -q --manifest-path "$snap/src/Cargo.toml" -p cargo-perfgate
bin="$CARGO_TARGET_DIR/debug/cargo-perfgate"
unset GITHUB_BASE_REF CI_MERGE_REQUEST_TARGET_BRANCH_NAME PREDICT_LEAK || true
for v in $(env | grep -o '^PERFGATE_[A-Z_]*' || true); do unset "$v"; done
out=$(mktemp -d "${TMPDIR:-/tmp}/perfgate-soak.XXXXXX")
trap 'rm -rf "$out"' EXIT

# The figures of one results document, one tab-separated line.
summarise() {
    python3 - "$1" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
s = next(x for x in doc["scenarios"])
cells = [s["verdict"]]
for t in s.get("trends", []):
    ph, iv = t.get("per_hour"), t.get("interval_per_hour")
    m = t["trend"]["metric"]
    if ph is None:
        cells.append(f"{m}={t['outcome']}")
        continue
    unit = 1048576.0 if m == "rss_growth" else 1.0
    cells.append(f"{m}={t['outcome']} {ph/unit:+.2f} [{iv[0]/unit:+.2f}, {iv[1]/unit:+.2f}]")
print("\t".join(cells))
EOF
}

if [ "$MODE" = generator ]; then
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "generator soak: sustained_routing (1,000 req/s, 30m + 30s warm-up), load average at start $load" >&2
    set +e
    timeout 3000 "$bin" perfgate --manifest-path "$snap/src/Cargo.toml" -p predict-service \
        --tier soak --no-abort -q --message-format json sustained_routing >"$out/r.json" 2>"$out/err"
    code=$?
    set -e
    echo "exit $code; load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
    # The whole series stays for a look at its shape (a step or a steady climb).
    mkdir -p "$root/target"
    cp "$out/r.json" "$root/target/soak-generator.json" 2>/dev/null && echo "results: $root/target/soak-generator.json" >&2
    python3 - "$out/r.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
s = doc["scenarios"][0]
g = (s.get("generator") or {}).get("timeseries", [])
def at(t):
    return min(g, key=lambda p: abs(p["t"] - t)) if g else None
def mean_cpu(a, b):
    xs = [p["cpu_util"] for p in g if a <= p["t"] <= b]
    return sum(xs) / len(xs) if xs else float("nan")
if g:
    end = g[-1]["t"]
    one, thirty = at(60), at(1800)
    mib = 1048576.0
    print(f"generator RSS at {one['t']:.0f}s: {one['rss_bytes']/mib:.2f} MiB; at {thirty['t']:.0f}s: "
          f"{thirty['rss_bytes']/mib:.2f} MiB ({(thirty['rss_bytes']/one['rss_bytes']-1)*100:+.2f}%); "
          f"peak {max(p['rss_bytes'] for p in g)/mib:.2f} MiB over {end:.0f}s, {len(g)} points")
    print(f"generator CPU: {mean_cpu(30, 90):.3f} cores in minute 1, {mean_cpu(end-60, end):.3f} in the last minute")
r = s.get("result") or {}
it = r.get("iterations", {})
print(f"iterations {it.get('count')}, rate {it.get('throughput', 0):.1f}/s, p99 {it.get('latency', {}).get('p99_ms')} ms, "
      f"invalid: {r.get('invalid')}, verdict {s['verdict']}")
for t in s.get("trends", []):
    print(f"  {t['description']}: {t['outcome']}: {t['message']}")
EOF
    exit 0
fi

leak=0
[ "$MODE" = leak ] && leak=1
abort_flag=--no-abort
[ "$ABORT" = 1 ] && abort_flag=
echo "$MODE: $RUNS soaks of predict-service::predict, $DURATION + $WARMUP warm-up, PREDICT_LEAK=$leak${abort_flag:+, $abort_flag}" >&2
printf "run\texit\tload1\twall_s\tverdict\tchecks (per hour; rss in MiB)\n"
fails=0
alarms=0
drifts=0
for i in $(seq 1 "$RUNS"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s)
    set +e
    PREDICT_LEAK=$leak timeout 1200 "$bin" perfgate --manifest-path "$snap/src/Cargo.toml" \
        -p predict-service --tier soak --duration "$DURATION" --warmup "$WARMUP" $abort_flag \
        -q --message-format json ::predict >"$out/r.json" 2>"$out/err"
    code=$?
    set -e
    wall=$(($(date +%s) - start))
    if [ -s "$out/r.json" ]; then
        line=$(summarise "$out/r.json")
    else
        line="no results: $(tail -1 "$out/err")"
    fi
    printf "%s\t%s\t%s\t%s\t%s\n" "$i" "$code" "$load" "$wall" "$line"
    case "$line" in *"rss_growth=fail"*) fails=$((fails + 1)) ;; esac
    case "$line" in *"rss_growth=fail"* | *"fds_growth=fail"* | *"threads_growth=fail"*) alarms=$((alarms + 1)) ;; esac
    case "$line" in *"p99_drift=fail"*) drifts=$((drifts + 1)) ;; esac
done
echo "rss_growth failed in $fails of $RUNS runs; a leak check (rss, fds, threads) failed in $alarms; p99_drift failed in $drifts"
if [ "$MODE" = leak ]; then [ "$fails" = "$RUNS" ]; else [ "$alarms" = 0 ]; fi
