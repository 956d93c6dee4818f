#!/usr/bin/env bash
# Shared by tools/dist_train.sh and tools/dist_test.sh: run a tools/ entry point under
# torchrun, one process per GPU (per CPU process without GPUs: gloo).
# Usage: tools/torchrun_launch.sh ENTRY.py DEFAULT_PORT CONFIG NPROCS [ENTRY arguments...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) as for torchrun; PYTHON picks
# the interpreter.
set -euo pipefail

ENTRY=$1
DEFAULT_PORT=$2
CONFIG=$3
NPROCS=$4
shift 4
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-$DEFAULT_PORT}
PYTHON=${PYTHON:-python3}
# The repository root on the path, so configs can `custom_imports` project modules.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" --nproc_per_node="$NPROCS" \
    "$ROOT/tools/$ENTRY" "$CONFIG" --launcher pytorch "$@"
