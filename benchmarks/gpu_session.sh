#!/usr/bin/env bash
# One timed GPU session, as run on a lent H200 (docs/results.md): the training-speed benchmark,
# then the ResNet-20 half of the full-CIFAR-10 table with as many epochs as the time left allows
# (one schedule for every row, fixed before any row starts), 16 runs at once on the one GPU.
#
#   benchmarks/gpu_session.sh ARCHIVE_DIR OUT SECONDS
#
# ARCHIVE_DIR holds cifar10-jpeg.tar.xz and make_batches.py (../shared/data/cifar10-jpeg/).
# Everything worth keeping lands in OUT as it comes: train_speed.json, docs/results*.{json,md},
# the logs, and table_runs.tar.gz (each run's table_row.json and metrics.csv). The table's runs
# live in $TABLE (default /tmp/table) and resume there after a kill: rerun the same command.
# Environment knobs (for a smoke test on a CPU): PYTHON, MODELS, SPEED_MODELS, EPOCHS, JOBS,
# SPEED_ARGS, TABLE_ARGS.
set -u
archive_dir=$1; out=$2; budget=$3
start=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
data=${DATA:-/tmp/cifar10-jpeg}
table=${TABLE:-/tmp/table}
mkdir -p "$out/docs"
elapsed() { echo $(( $(date +%s) - start )); }

[ -f "$data/cifar-10-batches-py/data_batch_5" ] ||
  "$py" "$archive_dir/make_batches.py" "$archive_dir/cifar10-jpeg.tar.xz" "$data" >"$out/data.log" 2>&1 ||
  { echo "could not decode the CIFAR-10 archive (see $out/data.log)"; exit 2; }
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc) >"$out/machine.txt" 2>&1

# 1. training speed: every model eager first, then compiled while the time limit allows
speed_limit=$(( budget * 30 / 100 ))
timeout $(( speed_limit + 120 )) "$py" "$here/train_speed.py" --json "$out/train_speed.json" \
  --models ${SPEED_MODELS:-resnet20_cifar resnet18_cifar birealnet18} \
  --compile default --time-limit "$speed_limit" ${SPEED_ARGS:-} >"$out/train_speed.log" 2>&1
echo "speed done at $(elapsed) s"

# 2. the table: epochs from resnet20's measured dwr speed and the seconds left (20% kept back)
left=$(( budget - $(elapsed) - 40 ))
epochs=${EPOCHS:-$("$py" - "$out/train_speed.json" "$left" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
ips = next(r["images_per_s"] for r in rows if r["model"] == "resnet20_cifar" and r["path"] == "dwr")
# 15 runs + the search, 16 at once: about 5x one run's speed in all; the dwr rows start after
# the search (pre-training as long as a row), so the longest chain is about 3.6 runs' worth.
per_epoch = 45000 * 3.6 / ips
print(max(2, min(200, int(0.8 * int(sys.argv[2]) / per_epoch))))
EOF
)}
echo "table: $epochs epochs, $left s left"
timeout "$left" "$py" "$here/paper_table.py" --data-dir "$data/cifar-10-batches-py" \
  --models ${MODELS:-resnet20_cifar} --methods one-step --seeds 3 --epochs "$epochs" \
  --batch-size 256 --jobs ${JOBS:-16} --out "$table" --docs "$out/docs" ${TABLE_ARGS:-} \
  >"$out/table.log" 2>&1
echo "table ended ($?) at $(elapsed) s"
(cd "$table" && find . \( -name table_row.json -o -name metrics.csv -o -name prune.json \
  -o -name dwr_spec.json \) -print0 | tar -czf "$out/table_runs.tar.gz" --null -T -)
tail -n 3 "$table"/logs/*.log >"$out/job_logs_tail.txt" 2>/dev/null
