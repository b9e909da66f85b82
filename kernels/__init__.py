"""Fused GPU kernels (Triton) with PyTorch reference paths; installed as ``tokzoo.kernels``."""

from tokzoo.kernels.nearest import nearest_code

__all__ = ["nearest_code"]
