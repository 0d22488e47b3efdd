"""Hyper-transforms (h_a, h_s), one file per family."""
