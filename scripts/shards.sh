#!/usr/bin/env bash
# Sharded load on loopback, measured: SHARDS shard processes (`cargo perfgate --shard i/n`) against one
# service at a combined RATE req/s, merged with `cargo perfgate merge`, against unsharded runs at the
# same rate; then a known stall (the service frozen STALL_MS) seen by the merged p99.
#
#   scripts/shards.sh                        # 3 shards at 6,000/s, 10 s windows, 3 pairs of runs + the stall
#   REPS=5 DURATION=20 scripts/shards.sh
#   RATE=9000 SHARDS=3 scripts/shards.sh
#
# What it runs: the end-to-end fixture (cargo-perfgate/tests/fixtures/basic) with two scenarios added
# (`steady` and `stall`, both `GET /` in the open model at RATE), driven with --target-url against
# perfgate-runtime's bench server (hyper, one current-thread runtime). With PIN=1 (and taskset) the
# server is pinned to CPU 0 and every generator (the unsharded one and all shards) to CPU 1, so both
# setups get the same core; by default nothing is pinned (on a machine shared with other work a pinned
# core is as busy as the rest). Each pair runs the unsharded run and the sharded one back to back,
# alternating which goes first. The shards meet at a barrier directory and start together.
#
# The stall: a fresh server freezes for STALL_MS, 3 s into the measured window (counted from the first
# request it receives: the shards' common warm-up start). A start intended at t inside the stall
# [s, s + S) completes at s + S, so the latencies from the intended start are uniform over (0, S] for
# RATE·S of the RATE·D starts: the true p99 is S − 0.01·D (400 ms for S = 500 ms, D = 10 s).
#
# Exit status: 0 when the figures meet the targets (merged count = sum of the shards', merged rate
# within 1% of RATE, the merged runs' median p50 and p99 within the unsharded runs' range, stall p99
# within 5% of the truth), 1 when not, 2 when a run errored.
set -euo pipefail

RATE=${RATE:-6000}
SHARDS=${SHARDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
STALL_MS=${STALL_MS:-500}
PIN=${PIN:-0}
# KEEP=1 keeps the work directory (every shard's log and results) and says where it is.
KEEP=${KEEP:-0}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/perfgate-shards.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ "$KEEP" = 1 ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Thousands of connections are open while the service stalls (RATE × STALL_MS of them).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "load average at the start: $(cut -d" " -f1-3 /proc/loadavg)" >&2
echo "building cargo-perfgate and the bench server…" >&2
cargo build -q --manifest-path "$root/Cargo.toml" -p cargo-perfgate
cargo build -q --release --manifest-path "$root/Cargo.toml" -p perfgate-runtime --example bench_server
bin="$root/target/debug/cargo-perfgate"
server="$root/target/release/examples/bench_server"

pin_server=() pin_gen=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c 0) pin_gen=(taskset -c 1)
fi

# The fixture as the e2e tests use it, with the two scenarios of this measurement.
cp -R "$root/cargo-perfgate/tests/fixtures/basic" "$work/fx"
sed -i "s|@PERFGATE_RUNTIME_PATH@|$root/perfgate-runtime|" "$work/fx/Cargo.toml"
cp "$root/Cargo.lock" "$work/fx/Cargo.lock"
cat >"$work/fx/tests/shards.rs" <<EOF
use perfgate_runtime::{perf_test, Ctx};

#[perf_test(rate = $RATE, duration = "${DURATION}s", warmup = "${WARMUP}s")]
async fn steady(ctx: Ctx) -> perfgate_runtime::Result {
    ctx.get("/").send().await?.expect_status(200)?;
    Ok(())
}

#[perf_test(rate = $RATE, duration = "${DURATION}s", warmup = "${WARMUP}s")]
async fn stall(ctx: Ctx) -> perfgate_runtime::Result {
    ctx.get("/").send().await?.expect_status(200)?;
    Ok(())
}
EOF
export CARGO_TARGET_DIR="$root/target/perfgate-shards"
export GIT_CEILING_DIRECTORIES="$work"
unset GITHUB_BASE_REF CI_MERGE_REQUEST_TARGET_BRANCH_NAME || true

pg() {
  "${pin_gen[@]}" "$bin" perfgate "$@" --manifest-path "$work/fx/Cargo.toml" --color never -q
}

port=$((20000 + RANDOM % 20000))
start_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  "${pin_server[@]}" "$server" "$port" "$@" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "shards: the bench server did not start" >&2
  exit 2
}
url="http://127.0.0.1:$port"

echo "building the fixture's scenarios…" >&2
pg list >/dev/null

single() { # scenario out
  # Exit 1 (an SLO) or 3 (invalid: the generator fell behind) are figures to report; 2 is an error.
  local rc=0
  pg "$1" --target-url "$url" --results-file "$2" >"$work/run.log" 2>&1 || rc=$?
  if [ $rc = 2 ] || [ ! -f "$2" ]; then
    cat "$work/run.log" >&2
    echo "shards: the unsharded run failed" >&2
    exit 2
  fi
}

sharded() { # scenario tag
  local pids=() i rc=0
  for i in $(seq 1 "$SHARDS"); do
    pg "$1" --shard "$i/$SHARDS" --target-url "$url" --start-barrier "$work/barrier-$2" \
      --results-file "$work/$2-shard-$i.json" >"$work/$2-shard-$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      rc=1
      cat "$work/$2-shard-$((i + 1)).log" >&2
    fi
  done
  if [ $rc != 0 ]; then echo "shards: a shard failed" >&2; exit 2; fi
  # The merge applies the gate: exit 1 would be an SLO (none declared here but the implicit error
  # check), 3 an invalid shard; both are figures to report, not errors of this script.
  set +e
  "$bin" perfgate merge "$work/$2"-shard-*.json -o "$work/$2-merged.json" \
    --manifest-path "$work/fx/Cargo.toml" --color never -q >"$work/$2-merge.log" 2>&1
  local merged=$?
  set -e
  if [ $merged = 2 ]; then cat "$work/$2-merge.log" >&2; echo "shards: the merge failed" >&2; exit 2; fi
}

if [ "${ONLY:-}" = stall ]; then REPS=0; fi
start_server
for rep in $(seq 1 "$REPS"); do
  echo "pair $rep/$REPS…" >&2
  if [ $((rep % 2)) = 1 ]; then
    single steady "$work/single-$rep.json"
    sharded steady "rep$rep"
  else
    sharded steady "rep$rep"
    single steady "$work/single-$rep.json"
  fi
done

# The stall, 3 s into the measured window, on a fresh server for each setup (server, shards and the
# unsharded run alike).
stall_after=$((WARMUP * 1000 + 3000))
echo "the stall (${STALL_MS} ms)…" >&2
start_server "$stall_after" "$STALL_MS"
sharded stall stall
start_server "$stall_after" "$STALL_MS"
single stall "$work/single-stall.json"

set +e
python3 - "$work" "$RATE" "$SHARDS" "$REPS" "$DURATION" "$STALL_MS" <<'PY'
import json, sys, glob, os

work, rate, shards, reps, duration, stall_ms = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])

def result(path, name):
    doc = json.load(open(path))
    return next(s for s in doc["scenarios"] if s["result"] and s["result"]["spec"]["name"] == name)

ok = True
singles, merges = [], []
print(f"{shards} shards at a combined {rate:.0f}/s vs one generator at {rate:.0f}/s, {duration:.0f} s windows, {reps} pairs")
print(f"{'run':<10} {'count':>8} {'sum of shards':>14} {'rate/s':>9} {'p50 ms':>8} {'p99 ms':>8}  late+dropped per shard")
for rep in range(1, reps + 1):
    s = result(f"{work}/single-{rep}.json", "steady")["result"]
    singles.append(s)
    it = s["iterations"]
    bad = s["schedule"]["late"] + s["schedule"]["dropped"]
    flag = "  INVALID" if s["invalid"] else ""
    print(f"{'single ' + str(rep):<10} {it['count']:>8} {'':>14} {it['throughput']:>9.1f} {it['latency']['p50_ms']:>8.3f} {it['latency']['p99_ms']:>8.3f}  {bad}/{s['schedule']['intended']}{flag}")
    m = result(f"{work}/rep{rep}-merged.json", "steady")
    r = m["result"]
    parts = [result(p, "steady")["result"] for p in sorted(glob.glob(f"{work}/rep{rep}-shard-*.json"))]
    total = sum(p["iterations"]["count"] for p in parts)
    merges.append(r)
    it = r["iterations"]
    health = ", ".join(f"{h['late'] + h['dropped']}/{h['intended']}" for h in m["shards"])
    flag = "  INVALID" if r["invalid"] else ""
    print(f"{'merged ' + str(rep):<10} {it['count']:>8} {total:>14} {it['throughput']:>9.1f} {it['latency']['p50_ms']:>8.3f} {it['latency']['p99_ms']:>8.3f}  {health}{flag}")
    if it["count"] != total:
        print(f"  merged count {it['count']} != sum of the shards' {total}")
        ok = False
    if abs(it["throughput"] / rate - 1) > 0.01:
        print(f"  merged rate {it['throughput']:.1f}/s is more than 1% from {rate:.0f}/s")
        ok = False

def summary(metric):
    global ok
    sv = sorted(s["iterations"]["latency"][metric] for s in singles)
    mv = sorted(m["iterations"]["latency"][metric] for m in merges)
    med = lambda v: v[len(v) // 2]
    lo, hi = sv[0], sv[-1]
    ratio = med(mv) / med(sv)
    inside = lo <= med(mv) <= hi
    print(f"{metric}: unsharded {', '.join(f'{v:.3f}' for v in sv)} ms (spread {lo:.3f}–{hi:.3f}, max/min {hi / lo:.2f}); "
          f"merged {', '.join(f'{v:.3f}' for v in mv)} ms; median ratio merged/unsharded {ratio:.3f}; "
          f"the merged median is {'within' if inside else 'OUTSIDE'} the unsharded spread")
    ok &= inside

if reps:
    summary("p50_ms")
    summary("p99_ms")
    rates = [m["iterations"]["throughput"] for m in merges]
    print(f"merged rate: {', '.join(f'{r:.1f}' for r in rates)} /s ({', '.join(f'{(r / rate - 1) * 100:+.2f}%' for r in rates)})")

truth = stall_ms - 0.01 * duration * 1000
m = result(f"{work}/stall-merged.json", "stall")
r = m["result"]["iterations"]["latency"]
u = m["result"]["iterations"]["latency_uncorrected"]
s = result(f"{work}/single-stall.json", "stall")["result"]["iterations"]["latency"]
shard_p99 = [result(p, "stall")["result"]["iterations"]["latency"]["p99_ms"] for p in sorted(glob.glob(f"{work}/stall-shard-*.json"))]
err = r["p99_ms"] / truth - 1
print(f"stall {stall_ms:.0f} ms: truth p99 {truth:.0f} ms; merged p99 {r['p99_ms']:.1f} ms ({err * 100:+.1f}%), max {r['max_ms']:.1f} ms, "
      f"uncorrected p99 {u['p99_ms']:.1f} ms; shards' own p99 {', '.join(f'{v:.1f}' for v in shard_p99)} ms; unsharded p99 {s['p99_ms']:.1f} ms")
ok &= abs(err) <= 0.05
print("targets met" if ok else "targets NOT met")
sys.exit(0 if ok else 1)
PY
rc=$?
set -e
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
