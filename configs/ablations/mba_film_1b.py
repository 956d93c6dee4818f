# Table 3, row "Ours (w/ FiLM)": residual-FiLM modulation instead of MBA's additive
# residual; same routing, attention, gate and losses.
_base_ = ['../mba_1b.py']
mba = dict(type='MaskBiasedFiLM')
