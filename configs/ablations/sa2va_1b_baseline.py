# Table 2, row "Baseline (Sa2VA-1B)": no MBA (one decoder pass), no TMC, no boundary loss.
_base_ = ['../mba_1b.py']
mba = None
criterion = dict(tmc_weight=0.0, bound_weight=0.0)
