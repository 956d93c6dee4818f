#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG NGPUS [tools/test.py arguments...]
#   e.g. tools/dist_test.sh configs/mba_1b.py 4 --checkpoint CKPT --dataset mevis_u
# Runs tools/test.py under torchrun (one process per GPU; evaluation is sharded over ranks).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) as for torchrun.
# Rank 0 gathers the predictions, scores them and writes WORK_DIR/results.json.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    sed -n '2,6p' "$0" >&2
    exit 2
fi
CONFIG=$1
NGPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-29501}
PYTHON=${PYTHON:-python3}

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" --nproc_per_node="$NGPUS" \
    "$(dirname "$0")/test.py" "$CONFIG" --launcher pytorch "$@"
