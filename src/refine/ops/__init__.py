"""Kernels: each module pairs a slow ``*_reference`` with the fast torch version (and an fla dispatch on CUDA)."""
