"""Vector quantization (VQ-VAE): replace each vector by its nearest codebook entry.

z [B, N, D] is projected to codebook_dim (factorised low-dimensional codes, as in DAC and
TiTok: a small search space keeps codes in use), optionally l2-normalised (cosine codes),
and each vector is replaced by its nearest code; the nearest-code search is the fused
`tokzoo.kernels.nearest_code`. The straight-through estimator passes the decoder's
gradient to the encoder unchanged.

The codebook learns one of two ways:
- ema=True: each code moves to an exponential moving average of the vectors assigned to
  it (counts by bincount, sums by index_add_, in fp32: no N x K one-hot), with Laplace
  smoothing of the counts. Only the commitment loss is returned.
- ema=False: the codebook is a parameter trained by the codebook loss
  ||sg(z) - e||^2 next to the commitment loss ||z - sg(e)||^2.

k-means init: the first training batch runs Lloyd's algorithm on rank 0 and the result is
broadcast, so every rank starts from the same codebook and no rank waits on a collective
the others never call.

Dead-code restart: a code whose moving-average count falls below dead_code_threshold is
moved onto a random vector of the current batch (rank 0's choice, broadcast). The restart
runs after the EMA update and rewrites the EMA state with it (sum = vector * threshold,
count = threshold), so the next update keeps the new code; EnCodec's copy restarts before
the update, which then writes the old code back (encodec#61).
"""

import torch
import torch.nn.functional as F
from torch import nn

from tokzoo.kernels import nearest_code
from tokzoo.quantize.base import Quantizer, QuantizerOutput, all_reduce_, broadcast_, distributed, no_autocast


class VectorQuantizer(Quantizer):
    def __init__(
        self,
        dim,
        codebook_size=1024,
        codebook_dim=None,
        cosine=False,
        ema=True,
        decay=0.99,
        commitment_weight=0.25,
        kmeans_init=True,
        kmeans_iters=10,
        dead_code_threshold=2.0,
        eps=1e-5,
    ):
        super().__init__()
        codebook_dim = codebook_dim or dim
        self.codebook_size = codebook_size
        self.cosine, self.ema, self.decay, self.eps = cosine, ema, decay, eps
        self.commitment_weight = commitment_weight
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold

        self.project_in = nn.Linear(dim, codebook_dim) if codebook_dim != dim else nn.Identity()
        self.project_out = nn.Linear(codebook_dim, dim) if codebook_dim != dim else nn.Identity()

        codebook = torch.randn(codebook_size, codebook_dim)
        codebook = F.normalize(codebook, dim=-1) if cosine else codebook
        if ema:
            self.register_buffer("codebook", codebook)
            self.register_buffer("embed_sum", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # moving-average use counts
        self.register_buffer("initted", torch.tensor(not kmeans_init))

    @property
    def search_codebook(self):
        """The codebook in the (projected) search space, unit rows for cosine codes."""
        return F.normalize(self.codebook, dim=-1) if self.cosine else self.codebook

    def decode_codes(self, codes):
        self.check_codes(codes)
        return self.project_out(F.embedding(codes, self.search_codebook))

    def forward(self, z):
        z_in = self.project_in(z)
        with no_autocast(z):
            flat = z_in.float().reshape(-1, z_in.shape[-1])
            if self.cosine:
                flat = F.normalize(flat, dim=-1)
            if self.training and not self.initted:
                self.init_codebook(flat.detach())

            codebook = self.search_codebook
            codes, _ = nearest_code(flat.detach(), codebook.detach())
            quant = F.embedding(codes, codebook)

            loss = self.commitment_weight * F.mse_loss(flat, quant.detach())
            if not self.ema:
                loss = loss + F.mse_loss(quant, flat.detach())

            counts, stats = self.count_codes(codes)
            if self.training:
                self.update_codebook(flat.detach(), codes, counts)
            quant = flat + (quant - flat).detach()

        quantized = self.project_out(quant.reshape(z_in.shape).to(z_in.dtype))
        return QuantizerOutput(quantized, codes.reshape(z.shape[:-1]), loss, stats)

    @torch.no_grad()
    def init_codebook(self, flat):
        codebook, counts = kmeans(flat, self.codebook_size, self.kmeans_iters, self.cosine)
        broadcast_(codebook)
        broadcast_(counts)
        self.codebook.data.copy_(codebook)
        self.cluster_size.copy_(counts)
        if self.ema:
            self.embed_sum.copy_(codebook * counts[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def update_codebook(self, flat, codes, counts):
        """EMA step (counts already summed over ranks), then dead-code restart."""
        self.cluster_size.lerp_(counts, 1 - self.decay)
        if self.ema:
            sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, flat)
            self.embed_sum.lerp_(all_reduce_(sums), 1 - self.decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
            codebook = self.embed_sum / smoothed[:, None]
            self.codebook.copy_(F.normalize(codebook, dim=-1) if self.cosine else codebook)
        if self.dead_code_threshold > 0:
            self.restart_dead_codes(flat)

    @torch.no_grad()
    def restart_dead_codes(self, flat):
        # a candidate for every code keeps this free of host syncs; only dead codes take theirs
        samples = broadcast_(flat[torch.randint(len(flat), (self.codebook_size,), device=flat.device)])
        dead = self.cluster_size < self.dead_code_threshold
        self.codebook.data.copy_(torch.where(dead[:, None], samples, self.codebook.data))
        self.cluster_size.masked_fill_(dead, self.dead_code_threshold)
        if self.ema:
            self.embed_sum.copy_(torch.where(dead[:, None], samples * self.dead_code_threshold, self.embed_sum))


@torch.no_grad()
def kmeans(samples, num_clusters, iters=10, cosine=False):
    """Lloyd's algorithm on rank 0 (others get zeros, to be overwritten by a broadcast).

    Assignment by nearest_code and means by index_add_, so memory stays O(N + K D).
    Returns the means and the size of each cluster at the last assignment.
    """
    if distributed() and torch.distributed.get_rank() != 0:
        return samples.new_zeros(num_clusters, samples.shape[1]), samples.new_zeros(num_clusters)
    n = len(samples)
    pick = torch.randperm(n, device=samples.device)[:num_clusters] if n >= num_clusters else torch.randint(n, (num_clusters,), device=samples.device)
    means = samples[pick]
    for _ in range(iters):
        codes, _ = nearest_code(samples, means)
        counts = torch.bincount(codes, minlength=num_clusters).float()
        sums = torch.zeros_like(means).index_add_(0, codes, samples)
        new = sums / counts.clamp(min=1)[:, None]
        new = F.normalize(new, dim=-1) if cosine else new
        means = torch.where(counts[:, None] > 0, new, means)
    return means, counts
