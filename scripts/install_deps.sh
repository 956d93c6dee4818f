#!/usr/bin/env bash
# Install everything MPR-CMA needs into the active Python environment.
#
# Usage: bash scripts/install_deps.sh [PYTHON]
#
# Order matters: torch/torchvision first (the CPU machines this project targets have
# them on local disk and cap pip at torch<=2.14.1), then the pinned requirements without
# build isolation, so that sam2 and deepspeed compile against the torch just installed
# instead of pulling a second multi-GB torch into a temporary build environment.
# SAM2_BUILD_CUDA=0 skips sam2's optional CUDA extension (only used for hole filling in
# video post-processing; the package falls back to pure PyTorch without it).
set -euo pipefail
PY=${1:-python3}
cd "$(dirname "$0")/.."
torch_pin=$(grep -E '^torch==' requirements.txt)
tv_pin=$(grep -E '^torchvision==' requirements.txt)
"$PY" -m pip install --quiet "$torch_pin" "$tv_pin"
"$PY" -m pip install --quiet setuptools wheel ninja
SAM2_BUILD_CUDA=0 DS_BUILD_OPS=0 "$PY" -m pip install --quiet --no-build-isolation -r requirements.txt
# Overrides of pins made by our dependencies (the reason is in the file).
"$PY" -m pip install --quiet --no-deps -r requirements-nodeps.txt
"$PY" -m pip install --quiet --no-deps --no-build-isolation -e .
"$PY" scripts/check_env.py
