"""Benchmarks of training at a chosen model scale: named model configs (`models`), timed steady-state SFT and
REFINE steps (`steps`) and the peak-memory model that needs no GPU (`memory`)."""
