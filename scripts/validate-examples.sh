#!/usr/bin/env bash
# Validates the example manifests offline, without a cluster or GitHub:
# - examples/k8s/*.yaml against Kubernetes' JSON schemas, strictly (an unknown or misspelt field is an
#   error), for the versions in K8S_VERSIONS: kubernetes-validate (PyPI) ships the schemas.
# - examples/ci/github-actions*.yml against GitHub's workflow schema, as vendored by check-jsonschema
#   (PyPI).
# Not validated: what only a cluster or a runner knows (the image, the storage class, RBAC, the actions'
# inputs, the shell in `run:` steps).
#
#   scripts/validate-examples.sh
#   K8S_VERSIONS="1.28.0 1.37.0" scripts/validate-examples.sh
#
# The tools go into a virtualenv under target/. Exit status: 0 valid, 1 a manifest is invalid, 2 the
# tools could not be installed (CI reports that as a warning, not a failure).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}
venv="$root/target/validate-examples-venv"

if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/check-jsonschema" ]; then
  echo "installing kubernetes-validate and check-jsonschema into $venv…" >&2
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q kubernetes-validate==1.37.0 check-jsonschema==0.39.0; } >&2; then
    echo "validate-examples: could not install the validators" >&2
    exit 2
  fi
fi

status=0
for v in $K8S_VERSIONS; do
  "$venv/bin/kubernetes-validate" --strict -k "$v" "$root"/examples/k8s/*.yaml || status=1
done
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$root"/examples/ci/github-actions*.yml || status=1

# The Indexed Job's pods: each one's shell command, run with `echo` for cargo, must name shard
# JOB_COMPLETION_INDEX + 1 of `completions`, and its own results file.
"$venv/bin/python" - "$root"/examples/k8s/shards-job.yaml <<'PY' || status=1
import subprocess, sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc["kind"] != "Job":
        continue
    n = doc["spec"]["completions"]
    c = doc["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
    for k in range(n):
        script = c["args"][0].replace("exec cargo ", "exec echo cargo ", 1)
        out = subprocess.run(c["command"] + [script], env={**env, "JOB_COMPLETION_INDEX": str(k), "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, check=True).stdout
        want = [f"--shard {k + 1}/{n}", f"shard-{k + 1}.json"]
        if not all(w in out for w in want):
            sys.exit(f"pod {k} of {doc['metadata']['name']} runs `{out.strip()}`, which lacks {want}")
        print(f"pod {k}: {out.strip()}")
PY
exit $status
