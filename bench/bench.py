#!/usr/bin/env python3
"""perfgate's load engine against its peers, side by side, in one run (see docs/BENCHMARKS.md).

A one-core hyper server (perfgate-runtime/examples/bench_server.rs) is pinned to one core and each
generator in turn to another, on loopback. Measured, medians of --reps runs of --secs seconds:

  closed   closed loop with 50 connections/users: max throughput, generator CPU-s per 100k requests
  open     a fixed open-loop rate (10,000/s): achieved rate, CPU-s per 100k, reported p50/p99
  stall    1,000/s for 10 s against a server that freezes for 1 s, 3 s in: reported p99 against
           the analytic truth (900 ms), corrected and uncorrected where the tool has both
  rss      perfgate's peak RSS for a 10 s and a 60 s run (memory flat in run length)

Ratios are perfgate / peer from the same run. Peers: wrk and hey (Debian), oha (crates.io), each
used if found on PATH (or OHA=/path/to/oha); BASE_LOADGEN=/path/to/loadgen adds an older build
of perfgate's generator as `perfgate-base` (before and after, in the same run). In the open test
two floors run too (perfgate-runtime/examples/floor.rs, raw epoll): `floor`, one timerfd wake-up
per start at its intended time, one send and one receive, nothing else (the least exact starts
cost on this machine); `floor-1ms`, the same waking once per millisecond and sending every start
then due, as wrk2 does.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "target", "release", "examples")
PORT = 18080
URL = f"http://127.0.0.1:{PORT}/"
CONNECTIONS = 50
STALL_AFTER_MS, STALL_MS, STALL_RATE, STALL_SECS = 3000, 1000, 1000, 10
# A start intended at t in the stall [s, s+1 s) completes when it ends: its latency is s+1-t, uniform
# over (0, 1 s]; the 1% slowest of the 10,000 starts are the 100 slower than 1 s - 100/1000 s.
STALL_TRUTH_MS = STALL_MS - 100.0 * 1000 / STALL_RATE


def run_timed(cmd, cpu, timeout):
    """Runs cmd pinned to cpu; returns (stdout, cpu seconds, max RSS KB, sleeps) from GNU time.
    Sleeps are the voluntary context switches of all its threads: each is one trip through idle
    and back, on this kind of VM the largest cost of a request at a fixed rate."""
    full = ["/usr/bin/time", "-f", "TIME %U %S %M %w", "taskset", "-c", str(cpu)] + cmd
    p = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    m = re.search(r"TIME ([\d.]+) ([\d.]+) (\d+) (\d+)", p.stderr)
    if not m:
        raise RuntimeError(f"{cmd[0]} failed: {p.stderr[-2000:]}")
    return p.stdout, float(m.group(1)) + float(m.group(2)), int(m.group(3)), int(m.group(4))


class Server:
    def __init__(self, cpu, stall=False):
        args = [os.path.join(EXAMPLES, "bench_server"), str(PORT)]
        if stall:
            args += [str(STALL_AFTER_MS), str(STALL_MS)]
        self.p = subprocess.Popen(["taskset", "-c", str(cpu)] + args, stderr=subprocess.DEVNULL)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                import socket
                socket.create_connection(("127.0.0.1", PORT), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("bench_server did not start")

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.p.terminate()
        self.p.wait(timeout=5)


def ms(v):
    return None if v is None else float(v)


# Each runner returns dict(requests, secs, cpu, p50, p99[, p99u]) for one load: ("closed", None) or
# ("open", rate) with the given connections.
def perfgate(load, rate, secs, cpu, conns, loadgen=None):
    cmd = [loadgen or os.path.join(EXAMPLES, "loadgen"), URL, "--duration-s", str(secs)]
    if load == "closed":
        cmd += ["--users", str(conns)]
    else:
        cmd += ["--rate", str(rate)]
        if conns:
            cmd += ["--max-in-flight", str(conns)]
    out, cpu_s, rss, sleeps = run_timed(cmd, cpu, secs + 30)
    r = json.loads(out.strip().splitlines()[-1])
    return dict(requests=r["requests"], secs=secs, cpu=cpu_s, rss=rss, sleeps=sleeps,
                p50=r["p50_ms"], p99=r["p99_ms"], p50u=r["p50_uncorrected_ms"],
                p99u=r["p99_uncorrected_ms"], lag50=r["lag_p50_ms"], invalid=r["invalid"], errors=r["errors"])


def wrk(load, rate, secs, cpu, conns):
    if load != "closed":
        return None  # Debian's wrk is wrk 4, not wrk2: no fixed rate (-R).
    out, cpu_s, rss, sleeps = run_timed(["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", URL],
                                cpu, secs + 30)
    n = int(re.search(r"(\d+) requests in", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    return dict(requests=n, secs=secs, cpu=cpu_s, rss=rss, sleeps=sleeps, p50=pct(50), p99=pct(99))


def floor(coalesce_us):
    """The bare generator of examples/floor.rs: open loop only."""
    def run(load, rate, secs, cpu, conns):
        if load != "open":
            return None
        cmd = [os.path.join(EXAMPLES, "floor"), URL, "--rate", str(rate), "--duration-s", str(secs),
               "--connections", str(conns), "--coalesce-us", str(coalesce_us)]
        out, cpu_s, rss, sleeps = run_timed(cmd, cpu, secs + 30)
        r = json.loads(out.strip().splitlines()[-1])
        return dict(requests=r["requests"], secs=secs, cpu=cpu_s, rss=rss, sleeps=sleeps,
                    p50=None, p99=None, lag50=r["lag_p50_ms"])
    return run


# Runs only in the fixed-rate test (not in the stall test, whose truth is about latency).
OPEN_ONLY = {"floor", "floor-1ms"}


def oha_path():
    for p in [os.environ.get("OHA"), shutil.which("oha"), os.path.expanduser("~/.cargo/bin/oha"),
              "/tmp/oha-install/bin/oha"]:
        if p and os.path.exists(p):
            return p
    return None


def oha(load, rate, secs, cpu, conns):
    cmd = [oha_path(), "-z", f"{secs}s", "-c", str(conns), "--no-tui", "--output-format", "json"]
    if load != "closed":
        cmd += ["-q", str(rate), "--latency-correction"]
    out, cpu_s, rss, sleeps = run_timed(cmd + [URL], cpu, secs + 60)
    r = json.loads(out)
    n = sum(r.get("statusCodeDistribution", {}).values())
    lp = r["latencyPercentiles"]
    return dict(requests=n, secs=secs, cpu=cpu_s, rss=rss, sleeps=sleeps, p50=lp["p50"] * 1000,
                p99=lp["p99"] * 1000)


def hey(load, rate, secs, cpu, conns):
    cmd = ["hey", "-z", f"{secs}s", "-c", str(conns)]
    if load != "closed":
        cmd += ["-q", str(max(1, round(rate / conns)))]  # hey's -q is per worker
    out, cpu_s, rss, sleeps = run_timed(cmd + [URL], cpu, secs + 60)
    n = sum(int(x) for x in re.findall(r"\[\d+\]\s+(\d+) responses", out))

    def pct(p):
        m = re.search(rf"{p}% in ([\d.]+) secs", out)
        return float(m.group(1)) * 1000 if m else None
    return dict(requests=n, secs=secs, cpu=cpu_s, rss=rss, sleeps=sleeps, p50=pct(50), p99=pct(99))


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summary(runs):
    return dict(
        rate=med([dict(v=r["requests"] / r["secs"]) for r in runs], "v"),
        cpu100k=med([dict(v=r["cpu"] * 1e5 / max(r["requests"], 1)) for r in runs], "v"),
        sleeps=med([dict(v=r["sleeps"] / max(r["requests"], 1)) for r in runs], "v"),
        p50=med(runs, "p50"), p99=med(runs, "p99"), p50u=med(runs, "p50u"),
        p99u=med(runs, "p99u"), lag50=med(runs, "lag50"), rss=med(runs, "rss"),
        invalid=next((r.get("invalid") for r in runs if r.get("invalid")), None))


def value(run, key):
    """One run's figure under the name summary() gives it."""
    if key == "rate":
        return run["requests"] / run["secs"]
    if key == "cpu100k":
        return run["cpu"] * 1e5 / max(run["requests"], 1)
    return run.get(key)


def fmt(v, spec="{:.2f}"):
    return "-" if v is None else spec.format(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--gen-cpu", type=int, default=1)
    ap.add_argument("--only", default="closed,open,stall,rss")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    only = set(a.only.split(","))
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "perfgate-runtime", "--examples"],
                       cwd=ROOT, check=True)
    tools = {"perfgate": perfgate}
    # Before and after in one run: BASE_LOADGEN=/path/to/an/older/build/of/loadgen.
    base = os.environ.get("BASE_LOADGEN")
    if base:
        tools["perfgate-base"] = lambda *args: perfgate(*args, loadgen=base)
    if shutil.which("wrk"):
        tools["wrk"] = wrk
    if oha_path():
        tools["oha"] = oha
    if shutil.which("hey"):
        tools["hey"] = hey
    if os.path.exists(os.path.join(EXAMPLES, "floor")):
        tools["floor"] = floor(0)
        tools["floor-1ms"] = floor(1000)
    print(f"# perfgate engine benchmark: {', '.join(tools)}; server on cpu {a.server_cpu}, "
          f"generator on cpu {a.gen_cpu}; medians of {a.reps} x {a.secs} s")
    print(f"# load average at start: {os.getloadavg()[0]:.2f}")

    def table(title, load, rate, conns, secs, stall=False):
        print(f"\n## {title}")
        results = {}
        # Per rep, each tool's result: ratios are taken within a rep (runs seconds apart), then
        # their median, so a drift of the shared machine between reps cancels out.
        reps = []
        # The stall happens once, 3 s after the server's first request: a fresh server per run.
        shared = None if stall else Server(a.server_cpu)
        try:
            for rep in range(a.reps):
                reps.append({})
                for name, fn in tools.items():
                    if name in OPEN_ONLY and (stall or load != "open"):
                        continue
                    own = Server(a.server_cpu, stall=True) if stall else None
                    try:
                        # wrk has no fixed rate: in the stall test it runs closed loop.
                        mode = "closed" if stall and name == "wrk" else load
                        r = fn(mode, rate, secs, a.gen_cpu, conns)
                    except Exception as e:  # a peer failing must not hide the others
                        print(f"#   {name}: {e}", file=sys.stderr)
                        r = None
                    finally:
                        if own:
                            own.__exit__()
                    if r:
                        results.setdefault(name, []).append(r)
                        reps[-1][name] = r
                    time.sleep(0.5)
        finally:
            if shared:
                shared.__exit__()
        return {n: summary(rs) for n, rs in results.items()}, reps

    def ratios(s, reps, key):
        # The median over reps of perfgate/peer within the rep.
        out = []
        for n in (n for n in s if n != "perfgate"):
            per = [pair for pair in (paired(rep, n, key) for rep in reps) if pair]
            if per:
                out.append(f"{n} {statistics.median(per):.2f}x")
        return "  ".join(out)

    def paired(rep, peer, key):
        pg, other = rep.get("perfgate"), rep.get(peer)
        if not (pg and other):
            return None
        a, b = value(pg, key), value(other, key)
        return a / b if a and b else None

    if "closed" in only:
        s, reps = table(f"closed loop, {CONNECTIONS} connections", "closed", None, CONNECTIONS, a.secs)
        print(f"{'tool':13} {'req/s':>10} {'CPU-s/100k':>11} {'p50 ms':>8} {'p99 ms':>8}")
        for n, r in s.items():
            print(f"{n:13} {fmt(r['rate'], '{:.0f}'):>10} {fmt(r['cpu100k']):>11} "
                  f"{fmt(r['p50'], '{:.3f}'):>8} {fmt(r['p99'], '{:.3f}'):>8}")
        print(f"perfgate/peer throughput: {ratios(s, reps, 'rate')}")
        print(f"perfgate/peer CPU per request: {ratios(s, reps, 'cpu100k')}")
    if "open" in only:
        s, reps = table(f"open loop at {a.rate}/s", "open", a.rate, CONNECTIONS, a.secs)
        print(f"{'tool':13} {'req/s':>10} {'CPU-s/100k':>11} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'p50 unc.':>9} {'p99 unc.':>9} {'lag p50':>8} {'sleeps/req':>10}")
        for n, r in s.items():
            print(f"{n:13} {fmt(r['rate'], '{:.0f}'):>10} {fmt(r['cpu100k']):>11} "
                  f"{fmt(r['p50'], '{:.3f}'):>8} {fmt(r['p99'], '{:.3f}'):>8} "
                  f"{fmt(r['p50u'], '{:.3f}'):>9} {fmt(r['p99u'], '{:.3f}'):>9} "
                  f"{fmt(r['lag50'], '{:.3f}'):>8} {fmt(r['sleeps']):>10}")
            if r.get("invalid"):
                print(f"  {n}: invalid: {r['invalid']}")
        print(f"perfgate/peer CPU per request: {ratios(s, reps, 'cpu100k')}")
        pg = s.get("perfgate")
        if pg:
            print(f"perfgate achieved {100 * pg['rate'] / a.rate:.2f}% of the target rate; "
                  f"corrected p50 - uncorrected p50 = {1000 * (pg['p50'] - pg['p50u']):.0f} us")
    if "stall" in only:
        s, _ = table(f"stall: {STALL_RATE}/s for {STALL_SECS} s, server frozen {STALL_MS} ms at "
                  f"{STALL_AFTER_MS} ms; analytic p99 {STALL_TRUTH_MS:.0f} ms", "open",
                  STALL_RATE, CONNECTIONS, STALL_SECS, stall=True)
        print(f"{'tool':13} {'p99 ms':>8} {'vs truth':>9} {'p99 unc.':>9}")
        for n, r in s.items():
            err = None if r["p99"] is None else 100 * (r["p99"] / STALL_TRUTH_MS - 1)
            print(f"{n:13} {fmt(r['p99'], '{:.1f}'):>8} {fmt(err, '{:+.1f}%'):>9} "
                  f"{fmt(r['p99u'], '{:.1f}'):>9}")
        print("(wrk: closed loop, no fixed rate; hey: no latency correction)")
    if "rss" in only:
        # Bounded like the open test: without a bound, RSS follows the peak number of connections a
        # hiccup of the server made the open model open (tens of KB each), not the run's length.
        print(f"\n## perfgate peak RSS by run length (open loop at the rate above, "
              f"max_in_flight {CONNECTIONS})")
        with Server(a.server_cpu):
            short = perfgate("open", a.rate, 10, a.gen_cpu, CONNECTIONS)
            long = perfgate("open", a.rate, 60, a.gen_cpu, CONNECTIONS)
        print(f"10 s: {short['rss']} KB, 60 s: {long['rss']} KB "
              f"({100 * (long['rss'] / short['rss'] - 1):+.1f}%)")
    print(f"\n# load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
