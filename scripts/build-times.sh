#!/usr/bin/env bash
# Build time of `cargo perfgate` from a cold target directory, for two cargo-perfgate binaries (e.g.
# before and after a change), on the bundled example and on a package with many test targets.
#
#   scripts/build-times.sh BEFORE_BIN AFTER_BIN          # both packages
#   CASES=example scripts/build-times.sh BEFORE AFTER    # only predict-service (CASES=many: the other)
#   TESTS=24 scripts/build-times.sh BEFORE AFTER         # the many-targets package with 24 test targets
#
# A binary of an older revision: `git archive REV | tar -x -C DIR && cargo build --release
# --manifest-path DIR/Cargo.toml -p cargo-perfgate`, then pass DIR/target/release/cargo-perfgate.
#
# Each run is `cargo perfgate --duration 1s --warmup 0s` with CARGO_TARGET_DIR a fresh directory, so
# every dependency compiles: the figures are the run's build time as its summary reports it (wall
# clock, with its parts) and the CPU seconds of the whole run (user + system, cargo and rustc
# included), which the machine's other load changes less than the wall clock.
#
# The many-targets package is the end-to-end fixture's service (tokio, hyper) plus TESTS (default 12)
# integration tests that hold no scenario, each with 30 tests of its own (async code, so each target
# compiles and links a share of tokio), and a library with unit tests: what a service's own test suite
# looks like to perfgate.
set -euo pipefail

BEFORE=${1:?usage: scripts/build-times.sh BEFORE_BIN AFTER_BIN}
AFTER=${2:?usage: scripts/build-times.sh BEFORE_BIN AFTER_BIN}
CASES=${CASES:-"example many"}
TESTS=${TESTS:-12}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d -t perfgate-build-times.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

make_many() {
  local dir=$1
  cp -r "$ROOT/cargo-perfgate/tests/fixtures/basic" "$dir"
  sed -i "s#@PERFGATE_RUNTIME_PATH@#$ROOT/perfgate-runtime#" "$dir/Cargo.toml"
  cp "$ROOT/Cargo.lock" "$dir/Cargo.lock"
  cat > "$dir/src/lib.rs" <<'EOF'
pub fn double(x: u64) -> u64 {
    x * 2
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles() {
        assert_eq!(super::double(21), 42);
    }
}
EOF
  for t in $(seq 1 "$TESTS"); do
    {
      for k in $(seq 1 30); do
        cat <<EOF
#[test]
fn t${t}_${k}() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        let c = tokio::spawn(async move { tokio::net::TcpStream::connect(a).await.map(|_| ${k}u64) });
        let (s, _) = l.accept().await.unwrap();
        drop(s);
        assert_eq!(c.await.unwrap().unwrap(), ${k});
    });
}
EOF
      done
    } > "$dir/tests/suite_$t.rs"
  done
}

# One cold run: prints "build_secs parts cpu_secs".
measure() {
  local bin=$1 manifest=$2 pkg=$3 target=$WORK/target
  rm -rf "$target"
  local json
  json=$(CARGO_TARGET_DIR=$target /usr/bin/time -f "%U %S" -o "$WORK/time" \
    "$bin" perfgate --manifest-path "$manifest" -p "$pkg" --duration 1s --warmup 0s -q \
    --message-format json 2>"$WORK/stderr") || {
    echo "the run failed:" >&2
    tail -20 "$WORK/stderr" >&2
    return 1
  }
  local cpu
  cpu=$(awk '{ printf "%.1f", $1 + $2 }' "$WORK/time")
  python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
parts = ", ".join("%s %.1fs" % (p["part"], p["secs"]) for p in r.get("build_parts", []))
print("%.1f\t%s\t%s" % (r["build_secs"], parts or "-", sys.argv[1]))' "$cpu" <<<"$json"
}

echo "load before: $(uptime)"
printf 'case\tbinary\tbuild (s)\tparts\tCPU of the run (s)\n'
for case in $CASES; do
  case $case in
    example)
      manifest=$ROOT/Cargo.toml
      pkg=predict-service
      ;;
    many)
      make_many "$WORK/many"
      manifest=$WORK/many/Cargo.toml
      pkg=fixture-svc
      ;;
    *)
      echo "unknown case $case (example, many)" >&2
      exit 2
      ;;
  esac
  for which in before after; do
    if [ $which = before ]; then bin=$BEFORE; else bin=$AFTER; fi
    printf '%s\t%s\t%s\n' "$case" "$which" "$(measure "$bin" "$manifest" "$pkg")"
  done
done
echo "load after: $(uptime)"
