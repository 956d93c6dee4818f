# Method knobs of MPR-CMA with the paper's defaults (../shared/docs/PAPER.md, sections 3.2-3.4).
# The model (sa2va_mba_1b.py) reads them as '${mba}' and '${criterion}'; a leaf sets single
# fields, e.g. `mba = dict(top_k=8)`, `criterion = dict(tmc_weight=0.0)` or `mba = None`
# (no MBA), or on the command line `--cfg-options mba.top_k=8` (configs/README.md).
# "ours" marks choices the paper leaves open.

# Mask-Biased Attention, eqs. (1)-(4). Swap `type` to 'MaskBiasedFiLM' for the Table 3 row.
mba = dict(
    type='MaskBiasedAttention',
    # dim: SAM-2's embedding width C (256), filled in by SAM2Grounding
    num_heads=8,              # ours
    top_k=4,                  # ours: text tokens kept by the router; None keeps all
    tau_gate=1.0,             # eq. (3) gate temperature (paper)
    router_hidden_ratio=0.5,  # ours: router MLP hidden width / dim
    attn_dropout=0.0,         # ours
    use_mask_gate=True,       # False = ungated cross-attention (ablation, Fig. 5)
)

# Training objective, eq. (6): weighted terms returned as a dict.
criterion = dict(
    type='MPRCMALoss',
    bce_weight=2.0,                # Sa2VA
    dice_weight=0.5,               # Sa2VA
    num_points=12544,              # Sa2VA: 112 x 112 importance-sampled points per mask
    oversample_ratio=3.0,          # Sa2VA / PointRend
    importance_sample_ratio=0.75,  # Sa2VA / PointRend
    dice_eps=1.0,                  # Sa2VA
    tmc_weight=0.1,                # lambda_tmc (paper); 0 disables TMC
    tmc_tau=0.15,                  # tau_tmc (paper)
    # tmc_visual_dim / tmc_text_dim: SAM-2's width, filled in by Sa2VAMBA
    tmc_embed_dim=256,             # ours: shared projection width
    tmc_pool_mask='pred',          # paper: pool over the predicted mask; 'gt' = ground truth
    tmc_detach_pool_mask=False,    # ours
    tmc_gather_across_ranks=True,  # ours: negatives from every GPU
    bound_weight=0.05,             # lambda_bound (paper); 0 disables the boundary loss
    bound_max_dist=16.0,           # ours: clip distance D (pixels of the working grid)
    bound_size=None,               # ours: working resolution; None = the logits' size
)
