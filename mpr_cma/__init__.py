"""MPR-CMA: Sa2VA extended with Mask-Biased Attention and fine-grained alignment losses.

Library code only (no scripts, no paths, no prints); entry points live in `tools/`.
"""

__version__ = "0.1.0"
