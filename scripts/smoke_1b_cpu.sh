#!/usr/bin/env bash
# The 1B model at real size through every command the README shows, on CPU (issue 16 item 1).
# Usage: scripts/smoke_1b_cpu.sh WORK_DIR        (~40 min on 2 cores, ~17 GB RAM)
#
# Random-init weights at real sizes in the real layouts (scripts/make_random_pretrained.py)
# and a one-sample-per-dataset data root in the real layouts (scripts/make_smoke_data.py,
# 448 px images and frames; SAM-2 at 1024 px) stand in for the downloads. Then, with the
# real 1B configs unchanged but for the --cfg-options below:
#   tools/dist_train.sh configs/mba_1b.py (2 iterations, a checkpoint), --resume auto
#   (iteration 3), configs/ablations/sa2va_1b_baseline.py (2 iterations), tools/test.py on
#   RefCOCO val and MeViS valid_u, tools/convert_ckpt.py to-hf and from-hf, and
#   tools/predict.py on the HF folder (an image and a video).
# CPU precision: DeepSpeed's bf16 weights fail inside SAM-2 on CPU (configs/tiny/
# train_tiny.py says why), so fp32 weights with bf16 autocast (strategy.bf16.enabled=False
# strategy.config.torch_autocast...). Not in CI (too slow); every step's wall time and
# peak RSS go to WORK_DIR/smoke_times.txt. Existing pretrained/ and data/ are reused.
set -euo pipefail
if [ "$#" -ne 1 ]; then sed -n '3p' "$0" >&2; exit 2; fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mkdir -p "$1" && cd "$1" && pwd)"
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
TIMES="$WORK/smoke_times.txt"
step() {  # step NAME COMMAND...: run, append "NAME wall_s peak_rss_kB" to $TIMES; a step
    local name=$1; shift   # that succeeded in an earlier run of the same WORK_DIR is skipped
    if [ -e "$WORK/.done_$name" ]; then echo "== $name: done before, skipped"; return; fi
    echo "== $name: $*"
    /usr/bin/time -f "$name %e s %M kB" -a -o "$TIMES" "$@"
    touch "$WORK/.done_$name"
}

PRE="$WORK/pretrained" DATA="$WORK/data"
[ -d "$PRE/InternVL2_5-1B" ] || step write_pretrained "$PYTHON" scripts/make_random_pretrained.py --out "$PRE"
[ -d "$DATA/refcoco" ] || step write_data "$PYTHON" scripts/make_smoke_data.py --out "$DATA"
# 8 training samples (3 RefCOCO-family images, 3 videos, 2 LLaVA chats) at batch 1.
# Smaller DeepSpeed buckets (2e7 elements instead of 2e8; one process, nothing to overlap):
# ~1.4 GB less RAM, the same arithmetic.
CPU="strategy.bf16.enabled=False strategy.config.torch_autocast.enabled=True
     strategy.config.torch_autocast.dtype=bfloat16
     strategy.zero_optimization.reduce_bucket_size=20000000
     strategy.zero_optimization.allgather_bucket_size=20000000"
# objects_per_sample=2 (the recipe: 5): a 5-object, 5-frame video sample at 1024 px peaks
# above the ~16 GB that a shared 24 GB machine leaves (OOM-killed twice).
# dataset_repeats 1 (the recipe: Sa2VA's 5/5/4/4/10/4/1): each smoke sample read once, so
# max_epochs below counts the 8 samples.
REPEATS="dataset_repeats.refcoco=1 dataset_repeats.refcoco_plus=1 dataset_repeats.refcocog=1
         dataset_repeats.mevis=1 dataset_repeats.revos=1 dataset_repeats.ref_ytvos=1
         dataset_repeats.llava=1"
RUN="pretrained_root=$PRE data_root=$DATA objects_per_sample=2 $REPEATS
     batch_size=1 accumulative_counts=1 num_workers=0
     train_dataloader.persistent_workers=False log_interval=1 save_steps=2 warmup_ratio=0.5"
# shellcheck disable=SC2086
step train_mba bash tools/dist_train.sh configs/mba_1b.py 1 --work-dir "$WORK/mba" \
    --cfg-options $CPU $RUN max_epochs=0.25
# shellcheck disable=SC2086
step resume_mba bash tools/dist_train.sh configs/mba_1b.py 1 --work-dir "$WORK/mba" \
    --resume auto --cfg-options $CPU $RUN max_epochs=0.375
grep -q "Iter(train) \[3/3\]" "$WORK"/mba/*/*.log || { echo "resume did not train iteration 3" >&2; exit 1; }
for split in "refcoco val" "mevis_u valid_u"; do
    set -- $split
    step "test_$1" "$PYTHON" tools/test.py configs/mba_1b.py --checkpoint "$WORK/mba" \
        --data-root "$DATA" --dataset "$1" --split "$2" --answer "It is [SEG]." --no-progress \
        --work-dir "$WORK/test/$1" --cfg-options "pretrained_root=$PRE"
done
[ -e "$WORK/.done_to_hf" ] || rm -rf "$WORK/hf_mba"
[ -e "$WORK/.done_from_hf" ] || rm -rf "$WORK/from_hf"
step to_hf "$PYTHON" tools/convert_ckpt.py to-hf "$WORK/mba" "$WORK/hf_mba"
step from_hf "$PYTHON" tools/convert_ckpt.py from-hf "$WORK/hf_mba" "$WORK/from_hf"
IMAGE=$(ls "$DATA"/coco2014/train2014/*.jpg | head -1)
VIDEO=$(ls -d "$DATA"/mevis/valid_u/JPEGImages/*/ | head -1)
step predict_image "$PYTHON" tools/predict.py "$WORK/hf_mba" --image "$IMAGE" \
    --text "the red shape" --answer "It is [SEG]." --out "$WORK/predict/image"
step predict_video "$PYTHON" tools/predict.py "$WORK/hf_mba" --video "$VIDEO" \
    --text "the moving shape" --answer "It is [SEG]." --out "$WORK/predict/video"
# shellcheck disable=SC2086
step train_baseline bash tools/dist_train.sh configs/ablations/sa2va_1b_baseline.py 1 \
    --work-dir "$WORK/baseline" --cfg-options $CPU $RUN max_epochs=0.25
echo "== done; times in $TIMES"
cat "$TIMES"
