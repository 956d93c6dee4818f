"""Spatio-temporal Mask-Biased Attention (projects/st_mba/README.md)."""
