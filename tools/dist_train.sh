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
exec bash "$(dirname "$0")/torchrun_launch.sh" train.py 29500 "$@"
