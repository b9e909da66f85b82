"""Residual quantization: level i quantizes what levels 0..i-1 left over.

The output is the sum of the levels' outputs and the codes are [B, N, num_quantizers],
coarse to fine, so any prefix of levels is a valid lower-bitrate code: forward(z,
num_quantizers=q) and decode_codes(codes[..., :q]) use the first q.

Quantizer dropout (SoundStream, DAC): in training, a fraction `quantizer_dropout` of the
examples keeps only a random number of levels, 1..num_quantizers, in its output, so one
model learns to decode every prefix. The dropped levels still quantize their true
residuals (and keep learning from them); only the output leaves them out.

Each level may work at its own scale (`scales`): residual FSQ divides the residual by a
shrinking per-level scale so every level sees inputs of the same range.
"""

import torch
from torch import nn

from tokzoo.quantize.base import Quantizer, QuantizerOutput
from tokzoo.quantize.vq import VectorQuantizer


class ResidualQuantizer(Quantizer):
    """A stack of quantizers over the residual, between optional projections."""

    def __init__(self, levels, dim=None, inner_dim=None, scales=None, quantizer_dropout=0.0, bound=None):
        super().__init__()
        self.levels = nn.ModuleList(levels)
        self.num_quantizers = len(levels)
        self.codebook_size = levels[0].codebook_size
        self.quantizer_dropout = quantizer_dropout
        project = dim is not None and inner_dim is not None and dim != inner_dim
        self.project_in = nn.Linear(dim, inner_dim) if project else nn.Identity()
        self.project_out = nn.Linear(inner_dim, dim) if project else nn.Identity()
        self.bound = bound if bound is not None else nn.Identity()
        self.register_buffer("scales", torch.stack(scales) if scales is not None else torch.ones(len(levels), 1), persistent=False)

    def _num_levels(self, num_quantizers):
        q = num_quantizers or self.num_quantizers
        if not 1 <= q <= self.num_quantizers:
            raise ValueError(f"num_quantizers must be in [1, {self.num_quantizers}], got {q}")
        return q

    def forward(self, z, num_quantizers=None):
        q = self._num_levels(num_quantizers)
        z_in = self.project_in(z)
        residual = self.bound(z_in.float())  # fp32: bf16 would swamp the fine levels' residuals
        keep = None
        if self.training and self.quantizer_dropout > 0:
            batch = z.shape[0]
            kept = torch.randint(1, q + 1, (batch,), device=z.device)
            dropped = torch.rand(batch, device=z.device) < self.quantizer_dropout
            keep = torch.where(dropped, kept, q)[:, None, None]

        quantized, codes, losses, stats = 0, [], [], []
        for i, (level, scale) in enumerate(zip(self.levels[:q], self.scales)):
            out = level(residual / scale)
            level_quantized = out.quantized * scale
            residual = residual - level_quantized.detach()
            if keep is not None:
                level_quantized = level_quantized * (i < keep)
            quantized = quantized + level_quantized
            codes.append(out.codes)
            losses.append(out.loss)
            stats.append(out.stats)

        stats = {key: torch.stack([s[key] for s in stats]).mean() for key in stats[0]}
        quantized = self.project_out(quantized.to(z_in.dtype))
        return QuantizerOutput(quantized, torch.stack(codes, -1), torch.stack(losses).sum(), stats)

    def decode_codes(self, codes):
        """codes [B, N, q] for any q <= num_quantizers -> [B, N, D]."""
        if codes.ndim < 2 or codes.shape[-1] > self.num_quantizers:
            raise ValueError(f"expected codes [..., q] with q <= {self.num_quantizers}, got {tuple(codes.shape)}")
        self.check_codes(codes)
        quantized = sum(level.decode_codes(codes[..., i]) * scale for i, (level, scale) in enumerate(zip(self.levels, self.scales[: codes.shape[-1]])))
        return self.project_out(quantized)


class ResidualVQ(ResidualQuantizer):
    """Residual VQ (SoundStream, EnCodec, DAC): each level a VectorQuantizer with its own codebook."""

    def __init__(self, dim, num_quantizers=8, quantizer_dropout=0.0, **vq_kwargs):
        super().__init__([VectorQuantizer(dim, **vq_kwargs) for _ in range(num_quantizers)], quantizer_dropout=quantizer_dropout)
