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
exec bash "$(dirname "$0")/torchrun_launch.sh" test.py 29501 "$@"
