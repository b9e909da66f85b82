"""Quantizers: one interface for VQ, RVQ, FSQ and LFQ.

    q = tokzoo.quantize.create("rvq", dim=128, codebook_size=1024, num_quantizers=8)
    out = q(z)            # z [B, N, D] -> out.quantized, out.codes, out.loss, out.stats
    z_hat = q.decode_codes(out.codes)
"""

from tokzoo.quantize.base import Quantizer, QuantizerOutput
from tokzoo.quantize.fsq import FSQ, ResidualFSQ
from tokzoo.quantize.lfq import LFQ
from tokzoo.quantize.rvq import ResidualQuantizer, ResidualVQ
from tokzoo.quantize.vq import VectorQuantizer

KINDS = {"vq": VectorQuantizer, "rvq": ResidualVQ, "fsq": FSQ, "rfsq": ResidualFSQ, "lfq": LFQ}


def create(kind, **kwargs):
    """A quantizer by kind: "vq", "rvq", "fsq", "rfsq" (residual FSQ) or "lfq"."""
    if kind not in KINDS:
        raise ValueError(f"unknown quantizer kind {kind!r}; choose from {sorted(KINDS)}")
    return KINDS[kind](**kwargs)


__all__ = ["create", "KINDS", "Quantizer", "QuantizerOutput", "VectorQuantizer", "ResidualQuantizer", "ResidualVQ", "FSQ", "ResidualFSQ", "LFQ"]
