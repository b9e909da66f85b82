"""The one quantizer interface: z [B, N, D] in, QuantizerOutput out.

Every kind (vq, rvq, fsq, rfsq, lfq) is an nn.Module with `codebook_size` (the size of one
codebook), `forward(z)` and `decode_codes(codes)`. Codebook statistics are counted per
batch; in training they are summed over ranks when torch.distributed is initialised, so
every rank logs (and, for EMA codebooks, learns from) the same global counts. In eval
they stay local: evaluation loops may run different numbers of batches per rank, and a
collective there would hang.
"""

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # [B, N, D], straight-through gradients to z
    codes: torch.Tensor      # LongTensor [B, N], or [B, N, num_quantizers] for residual kinds
    loss: torch.Tensor       # scalar auxiliary loss (commitment, codebook, entropy)
    stats: dict = field(default_factory=dict)  # "usage": fraction of codes used, "perplexity"


class Quantizer(nn.Module):
    codebook_size: int

    def check_codes(self, codes):
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"codes must be integers, got {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(
                f"codes must lie in [0, {self.codebook_size}), got values in [{codes.min().item()}, {codes.max().item()}]"
            )

    def count_codes(self, codes):
        """Usage and perplexity of a batch of codes (counts summed over ranks in training)."""
        counts = torch.bincount(codes.flatten(), minlength=self.codebook_size).float()
        if self.training:
            all_reduce_(counts)
        return counts, code_stats(counts)


def code_stats(counts):
    probs = counts / counts.sum().clamp(min=1)
    entropy = -(probs * probs.clamp(min=1e-12).log()).sum()
    return {"usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}


def distributed():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_(tensor):
    if distributed():
        dist.all_reduce(tensor)
    return tensor


def broadcast_(tensor):
    """Rank 0's value everywhere: random choices (k-means init, restarts) must agree."""
    if distributed():
        dist.broadcast(tensor, src=0)
    return tensor


def no_autocast(tensor):
    """A context that turns autocast off on the tensor's device: rounding, distances and
    index arithmetic stay in fp32 under bf16 mixed precision."""
    return torch.autocast(tensor.device.type, enabled=False)
