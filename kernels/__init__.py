"""Fused GPU kernels (Triton) with PyTorch reference paths; installed as ``tokzoo.kernels``."""
