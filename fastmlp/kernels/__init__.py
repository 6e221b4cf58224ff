"""Compiled code only: the Numba kernels and their low-level helpers."""
