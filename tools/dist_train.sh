#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NGPUS [tools/train.py arguments...]
#   e.g. tools/dist_train.sh configs/mba_1b.py 4 --work-dir work_dirs/mba_1b --resume auto
# Runs tools/train.py under torchrun, one process per GPU (per CPU process without GPUs:
# DeepSpeed ZeRO-2 over gloo). Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT).
set -euo pipefail

if [ "$#" -lt 2 ]; then
    sed -n '2,5p' "$0" >&2
    exit 2
fi
CONFIG=$1
NGPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-29500}
PYTHON=${PYTHON:-python3}
# The repository root on the path, so configs can `custom_imports` project modules.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" --nproc_per_node="$NGPUS" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
