# The paper's model (mba_1b.py) for 24 GB cards: one sample per GPU and twice the
# gradient accumulation, so an optimizer step still sees 1 x 8 x 4 GPUs = 32 samples and
# the length-grouped sampler still groups 8 samples per GPU, as Sa2VA-1B's 2 x 4. LLM
# gradient checkpointing on (as the recipe). Objects per sample, frames, tiles and
# losses are the recipe's. The estimate (per GPU, ZeRO-2 over 4 GPUs, from the per-part
# measurement of scripts/bench_memory_parts.py) is in docs/training.md: ~14 GB.
# Difference from the recipe: a micro-batch's mask losses are averaged over one sample's
# objects instead of two samples' objects.
_base_ = ['./mba_1b.py']
batch_size = 1
accumulative_counts = 8
llm_gradient_checkpointing = True
