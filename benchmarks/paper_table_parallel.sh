#!/usr/bin/env bash
# Run benchmarks/paper_table.py as one job per (backbone, method, seed), all at once: for a
# machine with many cores or a GPU. Shared work is done once: the one-step job of the first seed
# runs the DWR search and every other job waits for its spec (dwr_spec.json); the two-step job of
# the first seed trains the teacher and the other two-step jobs wait for it. Finished runs are
# skipped on a rerun, as with paper_table.py itself.
#
#   benchmarks/paper_table_parallel.sh OUT_DIR "MODEL..." "SEED..." [paper_table.py options...]
set -u -m
out=$1; models=$2; seeds=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
first=${seeds%% *}
mkdir -p "$out/logs"
pids=()
logs=()

# job MODEL METHOD SEED WAIT_FOR...: wait until each file exists (or its maker has died), then
# run. With job control on (set -m), each job leads its own process group, so a stop reaches
# its python too (and whatever a python launcher shim started).
job() {
  local model=$1 method=$2 seed=$3; shift 3
  local waits=("$@") makers=("${pids[@]}")
  (
    for f in "${waits[@]}"; do
      while [ ! -f "$f" ]; do
        alive=0
        for p in "${makers[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 1 ] || { echo "every earlier job ended without $f"; exit 1; }
        sleep 2
      done
    done
    exec "$py" "$here/paper_table.py" --out "$out" --models "$model" \
      --methods "$method" --only-seeds "$seed" "${args[@]}"
  ) >"$out/logs/$model.$method.seed$seed.log" 2>&1 &
  pids+=($!)
  logs+=("$out/logs/$model.$method.seed$seed.log")
}

args=("$@")
for model in $models; do
  spec="$out/$model/dwr_search/dwr_spec.json"
  teacher="$out/$model/teacher/result.json"
  job "$model" one-step "$first"
  job "$model" two-step "$first" "$spec"
  for seed in $seeds; do
    [ "$seed" = "$first" ] && continue
    job "$model" one-step "$seed" "$spec"
    job "$model" two-step "$seed" "$spec" "$teacher"
  done
done
trap 'for pid in "${pids[@]}"; do kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null; done; exit 143' TERM INT
status=0  # the exit code of the first job that failed (2: bad input, as paper_table.py says)
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" && continue
  rc=$?
  [ "$status" = 0 ] && status=$rc
  echo "failed: ${logs[$i]}: $(tail -n 1 "${logs[$i]}")" >&2
done
exit $status
