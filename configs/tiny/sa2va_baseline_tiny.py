# Tiny Sa2VA baseline: no MBA (one decoder pass), no TMC, no boundary loss.
_base_ = ['./sa2va_mba_tiny.py']
mba = None
criterion = dict(tmc_weight=0.0, bound_weight=0.0)
