# Table 2, row "+ MBA + TMC": Mask-Biased Attention and the TMC loss, no boundary loss.
_base_ = ['../mba_1b.py']
criterion = dict(bound_weight=0.0)
