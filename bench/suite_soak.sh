#!/usr/bin/env bash
# Is the test suite green every time? Clone main N times into fresh folders and run
# `make test` in each, one after the other, while a CPU hog keeps both cores busy.
#
#   bench/suite_soak.sh N [REPO]
#
# REPO: a path or URL to clone (default: the repository this script sits in); BRANCH
# (default main) picks the branch. Each run gets its own clone and, as on a fresh machine,
# its own .venv (`make test` builds it). SOAK_VENV=/path/to/venv skips that: the suite then
# runs as `$SOAK_VENV/bin/python -m pytest -q tests` in the clone, which imports the clone's
# package first (nothing is installed into that venv). HOGS (default: the number of cores)
# sets how many busy loops run alongside. Logs stay in $SOAK_OUT (default: a new folder
# under /tmp); KEEP=1 keeps the clones too.
#
# Prints one line per run, then `runs=N green=G` and the id of every failed test.
set -u

N=${1:?usage: bench/suite_soak.sh N [REPO]}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=${2:-$(git -C "$HERE" rev-parse --show-toplevel)}
BRANCH=${BRANCH:-main}
HOGS=${HOGS:-$(nproc)}
OUT=${SOAK_OUT:-$(mktemp -d /tmp/suite_soak.XXXXXX)}
mkdir -p "$OUT"

hogs=()
stop_hogs() {
    for pid in "${hogs[@]}"; do
        kill "$pid" 2>/dev/null
    done
    hogs=()
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$HOGS"); do
    sh -c 'while :; do :; done' &
    hogs+=($!)
done

green=0
failures=()
for i in $(seq "$N"); do
    dir=$(mktemp -d /tmp/suite_soak_clone.XXXXXX)
    log="$OUT/run$i.log"
    if ! git clone --quiet --branch "$BRANCH" --single-branch "$REPO" "$dir/repo" \
            >"$log" 2>&1; then
        echo "run $i: clone of $REPO ($BRANCH) failed, see $log"
        failures+=("run $i: clone failed")
        rm -rf "$dir"
        continue
    fi
    start=$(date +%s)
    if [ -n "${SOAK_VENV:-}" ]; then
        (cd "$dir/repo" && MUJOCO_GL=${MUJOCO_GL:-egl} \
            "$SOAK_VENV/bin/python" -m pytest -q -rfE -p no:cacheprovider tests) >>"$log" 2>&1
    else
        make -C "$dir/repo" test TEST_ARGS='-rfE -p no:cacheprovider' >>"$log" 2>&1
    fi
    code=$?
    # -q prints the summary bare ("1 failed, 473 passed ... in 1119.44s"), -v between '='s
    summary=$(grep -E '^=* ?[0-9]+ (passed|failed|errors?)\b.* in [0-9.]+s' "$log" | tail -1 \
        | tr -d '=')
    echo "run $i: exit $code in $(( $(date +%s) - start )) s:${summary:- no pytest summary}"
    if [ "$code" -eq 0 ]; then
        green=$((green + 1))
    else
        ids=$(grep -E '^(FAILED|ERROR) ' "$log" | sed -E 's/^(FAILED|ERROR) ([^ ]+).*/\2/')
        if [ -z "$ids" ]; then
            failures+=("run $i: exit $code without a failed test id (see $log)")
        fi
        for id in $ids; do
            failures+=("run $i: $id")
        done
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "  clone kept in $dir/repo"
    else
        rm -rf "$dir"
    fi
done

stop_hogs
echo "runs=$N green=$green"
for f in "${failures[@]+"${failures[@]}"}"; do
    echo "  $f"
done
echo "logs: $OUT"
[ "$green" -eq "$N" ]
