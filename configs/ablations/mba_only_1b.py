# Table 2, row "+ MBA": Mask-Biased Attention, no TMC, no boundary loss.
_base_ = ['../mba_1b.py']
criterion = dict(tmc_weight=0.0, bound_weight=0.0)
