# Table 2, row "+ MBA + TMC + Bound": the full method, identical to configs/mba_1b.py.
_base_ = ['../mba_1b.py']
