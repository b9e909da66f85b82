"""Lookup-free quantization (LFQ, MAGVIT-v2): each dimension is a bit.

z is projected to log2(codebook_size) dimensions and each is replaced by its sign (±1),
so the code is the binary number of the signs and no codebook is searched. An entropy
loss keeps codes in use: per-example entropy of the soft assignment is pushed down
(confident codes) while the entropy of the batch-average assignment is pushed up (all
codes used); the batch average is averaged over ranks under DDP. The soft assignment is
over all codes, so the loss costs O(N K): keep codebook_size moderate (<= 2^16).

The sign, bit arithmetic and entropy are vector-quantize-pytorch's LFQ, run with autocast
off in fp32: that library turns autocast off on CUDA only, and elsewhere the entropy's
distance einsum would run in bf16 before being scaled by an inverse temperature of 100.
"""

import math

from torch import nn
from vector_quantize_pytorch import LFQ as _LFQ

from tokzoo.quantize.base import Quantizer, QuantizerOutput, no_autocast


class LFQ(Quantizer):
    def __init__(self, dim, codebook_size=1024, entropy_weight=0.1, commitment_weight=0.25, diversity_gamma=1.0):
        super().__init__()
        bits = int(math.log2(codebook_size))
        if 2**bits != codebook_size:
            raise ValueError(f"LFQ codebook_size must be a power of 2, got {codebook_size}")
        self.codebook_size = codebook_size
        self.project_in = nn.Linear(dim, bits) if dim != bits else nn.Identity()
        self.project_out = nn.Linear(bits, dim) if dim != bits else nn.Identity()
        self.lfq = _LFQ(
            dim=bits,
            codebook_size=codebook_size,
            entropy_loss_weight=entropy_weight,
            commitment_loss_weight=commitment_weight,
            diversity_gamma=diversity_gamma,
        )

    def forward(self, z):
        z_in = self.project_in(z)
        with no_autocast(z):
            quant, codes, loss = self.lfq(z_in.float())
        codes = codes.long()
        _, stats = self.count_codes(codes)
        return QuantizerOutput(self.project_out(quant.to(z_in.dtype)), codes, loss, stats)

    def decode_codes(self, codes):
        self.check_codes(codes)
        return self.project_out(self.lfq.indices_to_codes(codes))
