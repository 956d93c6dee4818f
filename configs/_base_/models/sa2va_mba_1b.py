# The Sa2VA-1B + MBA model (paper section 3): InternVL2_5-1B MLLM with LoRA, SAM-2 Hiera-L
# grounding with Mask-Biased Attention between two decoder passes, and the losses of
# eq. (6). The method knobs `mba` and `criterion` are in mba_heads.py; '${...}' strings are
# late-bound references, resolved after every override (configs/README.md).
#
# Weights: local paths, nothing is downloaded. `pretrained_root` holds the InternVL2_5-1B
# HF folder and sam2_hiera_large.pt (the Sa2VA recipe); `pretrained_root = None` builds a
# random-init model (e.g. on the meta device to count parameters, or the tiny configs).
_base_ = ['./mba_heads.py']

pretrained_root = 'pretrained'
# The tokenizer folder of the model and of the training datasets (one source: the
# datasets add Sa2VA's tokens exactly as the model does, so the ids agree).
tokenizer = '${pretrained_root}/InternVL2_5-1B'
# The grid on which the mask losses compare prediction and ground truth: 'pred' (Sa2VA,
# models/sa2va.py forward: GT resized, nearest, to the decoder's 256 x 256 low-res logits,
# points sampled from both there) or 'input' (GT resized to SAM-2's S x S input, finer
# targets at the same points). docs/sa2va_parity.md has the measured difference.
gt_mask_size = 'pred'
# Recompute the LLM's layer activations in backward instead of storing them (Sa2VA: always,
# xtuner's InternVL_V1_5); same gradients, less memory, one more LLM forward per step.
llm_gradient_checkpointing = True
model = dict(
    type='Sa2VAMBA',
    mllm=dict(type='InternVLFromPreset', preset='internvl2_5_1b'),
    mllm_pretrained='${pretrained_root + "/InternVL2_5-1B" if pretrained_root else None}',
    tokenizer='${tokenizer}',
    grounding=dict(
        type='SAM2Grounding',
        sam2_config='configs/sam2/sam2_hiera_l.yaml',  # a config name of the sam2 package
        ckpt_path='${pretrained_root + "/sam2_hiera_large.pt" if pretrained_root else None}',
        image_size=1024,
        mba='${mba}',
        train_mask_decoder=True,   # Sa2VA trains the SAM-2 mask decoder
        detach_prior=False,        # ours: pass-1 logits keep their gradient through the gate
        object_gating='pointer',   # Sa2VA: no-object pointer substitution only, masks kept
        autocast_dtype='bfloat16',
        video_prompt='key_frames',     # Sa2VA: key frames prompted, the rest tracked
        mba_on_tracked_frames=False,   # ours: MBA where the [SEG] prompt is (docs/sa2va_parity.md)
        memory_dtype='bfloat16',       # Sa2VA stores SAM-2's video memory in bf16
    ),
    criterion='${criterion}',
    text_tokens='expression+seg',  # ours: F_t = expression tokens + [SEG]
    lora=dict(r=128, alpha=256, dropout=0.05),  # Sa2VA
    freeze_vision=True,                          # Sa2VA
    llm_loss_weight=1.0,
    gt_mask_size='${gt_mask_size}',
    llm_gradient_checkpointing='${llm_gradient_checkpointing}',
)
