"""Quantizers: one interface for VQ, RVQ, FSQ and LFQ."""
