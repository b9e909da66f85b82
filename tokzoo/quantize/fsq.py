"""Finite scalar quantization (FSQ, Mentzer et al. 2023): no codebook to learn or collapse.

z is projected to len(levels) dimensions; dimension i is bounded and rounded to one of
levels[i] values, and the code is the mixed-radix number of the rounded digits, so the
implicit codebook has prod(levels) entries. Rounding uses the straight-through estimator;
there is no auxiliary loss.

The bounding, rounding and digit arithmetic are vector-quantize-pytorch's FSQ, run here
with autocast off and in fp32 on every device: in bf16 the mixed-radix sum loses integers
above 256 and half the codes become unreachable (vector-quantize-pytorch#114). That
library only turns autocast off on CUDA; we do not rely on its own casts.

Residual FSQ stacks FSQ levels over the residual (see rvq.py). Level i sees the residual
scaled up by levels^i, so each level uses its full range; the input is soft-clamped to
just past [-1, 1] and each level clamps instead of tanh, as in vector-quantize-pytorch's
ResidualFSQ.
"""

import torch
from torch import nn
from vector_quantize_pytorch import FSQ as _FSQ

from tokzoo.quantize.base import Quantizer, QuantizerOutput, no_autocast
from tokzoo.quantize.rvq import ResidualQuantizer


class FSQ(Quantizer):
    def __init__(self, dim, levels=(8, 5, 5, 5), hard_clamp=False):
        super().__init__()
        self.levels = tuple(levels)
        self.project_in = nn.Linear(dim, len(levels)) if dim != len(levels) else nn.Identity()
        self.project_out = nn.Linear(len(levels), dim) if dim != len(levels) else nn.Identity()
        self.fsq = _FSQ(levels=list(levels), bound_hard_clamp=hard_clamp)
        self.codebook_size = self.fsq.codebook_size

    def forward(self, z):
        z_in = self.project_in(z)
        with no_autocast(z):
            quant, codes = self.fsq(z_in.float())
        codes = codes.long()
        _, stats = self.count_codes(codes)
        return QuantizerOutput(self.project_out(quant.to(z_in.dtype)), codes, z.new_zeros((), dtype=torch.float32), stats)

    def decode_codes(self, codes):
        self.check_codes(codes)
        with no_autocast(codes):
            quant = self.fsq.indices_to_codes(codes)
        return self.project_out(quant)


class SoftClamp(nn.Module):
    """x -> tanh(x / c) * c: keeps the residual stack's input just past [-1, 1]."""

    def __init__(self, value):
        super().__init__()
        self.register_buffer("value", value, persistent=False)

    def forward(self, x):
        return (x / self.value).tanh() * self.value


class ResidualFSQ(ResidualQuantizer):
    def __init__(self, dim, levels=(8, 5, 5, 5), num_quantizers=4, quantizer_dropout=0.0):
        base = torch.tensor(levels, dtype=torch.float32)
        super().__init__(
            [FSQ(len(levels), levels, hard_clamp=True) for _ in range(num_quantizers)],
            dim=dim,
            inner_dim=len(levels),
            scales=[base ** -i for i in range(num_quantizers)],
            quantizer_dropout=quantizer_dropout,
            bound=SoftClamp(1 + 1 / (base - 1)),
        )
