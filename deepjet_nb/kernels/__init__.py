"""Numba kernels on flat numpy arrays (offsets + content for jagged data); no I/O.

Each kernel has a plain-numpy reference implementation in the tests.
"""
