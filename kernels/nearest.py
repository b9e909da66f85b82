"""Nearest-code search: for each row of x [N, D], the closest row of a codebook [K, D].

The distance is expanded as ||x||^2 - 2 x.c + ||c||^2, so the bulk of the work is one
matrix product x @ codebook.T. The naive way materialises that N x K product (and
often an N x K one-hot after it); at N = 256k, K = 65k that is 67 GB in fp32. Both
paths here never hold more than a tile of it:

- the Triton kernel: each program owns a tile of rows of x, streams the codebook in
  tiles of BLOCK_K codes, accumulates x.c in fp32 with tl.dot (looping over D in
  chunks when D is large) and keeps a running minimum and argmin in registers. Only
  N indices and N distances are written to global memory. fp32 inputs multiply with
  input_precision="ieee" (Triton's default tf32 flips near-tie argmins); bf16/fp16
  inputs use the tensor cores with fp32 accumulation. ||c||^2 is computed once per call.
- the PyTorch reference: the same running minimum over chunks of N and K, with each
  chunk's product at most `chunk_elements` floats.

Ties go to the lowest index in both paths: within a tile by taking the smallest index
that attains the minimum, across tiles by replacing the running minimum only on a
strict improvement.

Distances: squared L2 for metric="l2"; for metric="cosine", 1 - cos(x, c), computed as
half the squared L2 distance between the unit-normalised vectors (a zero vector is
left at zero, so its cosine with anything is taken as 0). Distances come from the
expanded form in fp32 and are clamped at 0; inputs with a large common offset lose
precision to cancellation, so centre or normalise them first.
"""

import functools
import importlib.util

import torch
import torch.nn.functional as F

METRICS = ("l2", "cosine")
BACKENDS = ("auto", "torch", "triton")
# PyTorch path tiles: at most 512 codes by chunk_elements / 512 rows; cache-sized 4 MB tiles
# ran fastest on a 2-core Xeon (a tile is written by addmm, then read by min)
TORCH_BLOCK_K = 512


def nearest_code(x, codebook, metric="l2", backend="auto", chunk_elements=2**20):
    """(indices LongTensor [N], distances FloatTensor [N]) of the nearest codebook row.

    backend="auto" takes the Triton kernel on CUDA (when triton is installed) and the
    chunked PyTorch path elsewhere; chunk_elements bounds the PyTorch path's N x K tile (4 MB in fp32).
    """
    _check(x, codebook, metric, backend)
    if metric == "cosine":
        x, codebook = F.normalize(x.float(), dim=-1), F.normalize(codebook.float(), dim=-1)

    if backend == "auto":
        backend = "triton" if x.is_cuda and importlib.util.find_spec("triton") else "torch"
    search = _triton_search if backend == "triton" else functools.partial(_torch_search, chunk_elements=chunk_elements)
    indices, distances = search(x, codebook)

    if metric == "cosine":
        distances = distances / 2
    return indices, distances


def _check(x, codebook, metric, backend):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if x.ndim != 2 or codebook.ndim != 2:
        raise ValueError(f"expected x [N, D] and codebook [K, D], got x {tuple(x.shape)} and codebook {tuple(codebook.shape)}")
    if x.shape[1] != codebook.shape[1]:
        raise ValueError(f"dimension mismatch: x {tuple(x.shape)} has D={x.shape[1]}, codebook {tuple(codebook.shape)} has D={codebook.shape[1]}")
    if x.shape[0] == 0:
        raise ValueError(f"x is empty: {tuple(x.shape)}")
    if codebook.shape[0] == 0:
        raise ValueError(f"codebook has no codes (K = 0): {tuple(codebook.shape)}")
    if not (x.is_floating_point() and codebook.is_floating_point()):
        raise ValueError(f"expected floating point inputs, got x {x.dtype} and codebook {codebook.dtype}")
    if x.device != codebook.device:
        raise ValueError(f"x is on {x.device} but codebook is on {codebook.device}")
    # one host sync for both checks
    finite = torch.stack([torch.isfinite(x).all(), torch.isfinite(codebook).all()]).tolist()
    if not finite[0]:
        raise ValueError(f"x {tuple(x.shape)} contains NaN or Inf")
    if not finite[1]:
        raise ValueError(f"codebook {tuple(codebook.shape)} contains NaN or Inf")


def _torch_search(x, codebook, chunk_elements):
    """Running min over [n, k] tiles; each tile is one addmm: ||c||^2 - 2 x.c."""
    n, k = x.shape[0], codebook.shape[0]
    codebook = codebook.float()
    c2 = codebook.square().sum(-1)
    block_k = min(k, chunk_elements, TORCH_BLOCK_K)
    block_n = max(1, min(n, chunk_elements // block_k))

    indices = torch.empty(n, dtype=torch.long, device=x.device)
    distances = torch.empty(n, dtype=torch.float32, device=x.device)
    for n0 in range(0, n, block_n):
        xs = x[n0:n0 + block_n].float()
        best = torch.full((xs.shape[0],), float("inf"), device=x.device)
        best_idx = torch.zeros(xs.shape[0], dtype=torch.long, device=x.device)
        for k0 in range(0, k, block_k):
            d = torch.addmm(c2[k0:k0 + block_k], xs, codebook[k0:k0 + block_k].T, alpha=-2)
            tile_min, tile_idx = d.min(dim=1)
            better = tile_min < best
            best = torch.where(better, tile_min, best)
            best_idx = torch.where(better, tile_idx + k0, best_idx)
        indices[n0:n0 + block_n] = best_idx
        distances[n0:n0 + block_n] = (best + xs.square().sum(-1)).clamp_(min=0)
    return indices, distances


def _triton_search(x, codebook):
    if x.dtype != codebook.dtype:
        dtype = torch.promote_types(x.dtype, codebook.dtype)
        x, codebook = x.to(dtype), codebook.to(dtype)
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        x, codebook = x.float(), codebook.float()
    n, d = x.shape
    k = codebook.shape[0]
    c2 = torch.linalg.vector_norm(codebook, dim=1, dtype=torch.float32).square()
    indices = torch.empty(n, dtype=torch.long, device=x.device)
    distances = torch.empty(n, dtype=torch.float32, device=x.device)

    cfg = _config(d, x.element_size())
    grid = (-(-n // cfg["BLOCK_N"]),)
    _kernel()[grid](
        x, codebook, c2, indices, distances, n,
        x.stride(0), x.stride(1), codebook.stride(0), codebook.stride(1), K=k, D=d,
        IEEE=x.dtype == torch.float32, **cfg,
    )
    return indices, distances


def _config(d, itemsize):
    """Tile sizes. Up to D = 256 (16-bit) / 128 (fp32) the x tile stays resident and only
    codebook tiles are pipelined; above that both stream in 64-wide chunks of D. Sized to
    keep three pipeline stages within ~160 KB of shared memory (an H100 has 228 KB)."""
    max_d = 256 if itemsize == 2 else 128
    d_pow2 = max(16, 1 << (d - 1).bit_length())
    single = d_pow2 <= max_d
    block_d = d_pow2 if single else 64
    small_rows = block_d * itemsize <= 256
    return dict(
        BLOCK_N=128, BLOCK_K=128 if small_rows else 64, BLOCK_D=block_d,
        SINGLE_D=single, num_warps=8, num_stages=3,
    )


@functools.cache
def _kernel():
    """Build the kernel on first use, so tokzoo imports without triton (a dev extra).

    On CPU it runs only under TRITON_INTERPRET=1 set before triton is first imported. K and D are compile-time constants: a model's codebook shape is fixed, so that is one
    compile per codebook, and loops with constant trip counts also run in the interpreter
    under numpy >= 2.4 (runtime loop bounds do not there, triton#9171)."""
    import triton
    import triton.language as tl

    @triton.jit
    def nearest_l2(
        x_ptr, c_ptr, c2_ptr, idx_ptr, dist_ptr, N,
        stride_xn, stride_xd, stride_ck, stride_cd, K: tl.constexpr, D: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
        SINGLE_D: tl.constexpr, IEEE: tl.constexpr,
    ):
        rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rn < N
        x_rows = x_ptr + rn.to(tl.int64)[:, None] * stride_xn
        rd = tl.arange(0, BLOCK_D)

        # ||x||^2 for this tile of rows; when D fits in one chunk the x tile stays resident
        if SINGLE_D:
            xt = tl.load(x_rows + rd[None, :] * stride_xd, mask=row_ok[:, None] & (rd < D)[None, :], other=0.0)
            x2 = tl.sum(xt.to(tl.float32) * xt.to(tl.float32), axis=1)
        else:
            x2 = tl.zeros([BLOCK_N], dtype=tl.float32)
            for d0 in range(0, D, BLOCK_D):
                xs = tl.load(x_rows + (d0 + rd)[None, :] * stride_xd, mask=row_ok[:, None] & ((d0 + rd) < D)[None, :], other=0.0)
                x2 += tl.sum(xs.to(tl.float32) * xs.to(tl.float32), axis=1)

        best = tl.full([BLOCK_N], float("inf"), dtype=tl.float32)
        best_idx = tl.zeros([BLOCK_N], dtype=tl.int64)
        for k0 in range(0, K, BLOCK_K):
            rk = k0 + tl.arange(0, BLOCK_K)
            code_ok = rk < K
            c_rows = c_ptr + rk.to(tl.int64)[:, None] * stride_ck
            if SINGLE_D:
                ct = tl.load(c_rows + rd[None, :] * stride_cd, mask=code_ok[:, None] & (rd < D)[None, :], other=0.0)
                if IEEE:
                    xc = tl.dot(xt, tl.trans(ct), input_precision="ieee")
                else:
                    xc = tl.dot(xt, tl.trans(ct))
            else:
                xc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
                for d0 in range(0, D, BLOCK_D):
                    d_ok = (d0 + rd) < D
                    xs = tl.load(x_rows + (d0 + rd)[None, :] * stride_xd, mask=row_ok[:, None] & d_ok[None, :], other=0.0)
                    ct = tl.load(c_rows + (d0 + rd)[None, :] * stride_cd, mask=code_ok[:, None] & d_ok[None, :], other=0.0)
                    if IEEE:
                        xc = tl.dot(xs, tl.trans(ct), xc, input_precision="ieee")
                    else:
                        xc = tl.dot(xs, tl.trans(ct), xc)
            c2 = tl.load(c2_ptr + rk, mask=code_ok, other=float("inf"))
            dist = c2[None, :] - 2.0 * xc
            tile_min = tl.min(dist, axis=1)
            # lowest index attaining the tile minimum
            tile_idx = tl.min(tl.where(dist == tile_min[:, None], rk[None, :], K), axis=1).to(tl.int64)
            better = tile_min < best
            best = tl.where(better, tile_min, best)
            best_idx = tl.where(better, tile_idx, best_idx)

        tl.store(idx_ptr + rn, best_idx, mask=row_ok)
        tl.store(dist_ptr + rn, tl.maximum(best + x2, 0.0), mask=row_ok)

    return nearest_l2
