# train_tiny.py with the Sa2VA baseline model (no MBA, no TMC, no boundary loss).
_base_ = ['./train_tiny.py']
mba = None
criterion = dict(tmc_weight=0.0, bound_weight=0.0)
