import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from tokzoo import quantize
from tokzoo.quantize import FSQ, ResidualVQ, VectorQuantizer

CONFIGS = {
    "vq": dict(codebook_size=64, codebook_dim=8),
    "vq_learned_cosine": dict(codebook_size=64, ema=False, cosine=True),
    "rvq": dict(codebook_size=32, num_quantizers=3, quantizer_dropout=0.5),
    "fsq": dict(levels=(8, 5, 5, 5)),
    "rfsq": dict(levels=(8, 5, 5, 5), num_quantizers=3),
    "lfq": dict(codebook_size=256),
}


def make(name, dim=16):
    return quantize.create(name.split("_")[0], dim=dim, **CONFIGS[name])


def clusters(n, dim=16, k=8, spread=0.05, seed=0):
    """n points around k well-separated centres."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * 3
    return centres[torch.randint(k, (n,), generator=g)] + spread * torch.randn(n, dim, generator=g)


@pytest.mark.parametrize("name", CONFIGS)
def test_interface_and_straight_through_gradient(name):
    torch.manual_seed(0)
    encoder = torch.nn.Linear(16, 16)
    q = make(name)
    out = q(encoder(torch.randn(2, 20, 16)))
    residual = name in ("rvq", "rfsq")
    assert out.quantized.shape == (2, 20, 16)
    assert out.codes.shape == ((2, 20, 3) if residual else (2, 20)) and out.codes.dtype == torch.long
    assert out.loss.ndim == 0 and out.loss.isfinite()
    assert 0 < out.stats["usage"] <= 1 and 1 <= out.stats["perplexity"] <= q.codebook_size
    (out.quantized.square().sum() + out.loss).backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", CONFIGS)
def test_decode_codes_inverts_forward_and_rejects_bad_codes(name):
    torch.manual_seed(0)
    q = make(name)
    q(torch.randn(2, 20, 16))  # one training step: k-means init, EMA, restarts
    q.eval()
    out = q(torch.randn(2, 20, 16))
    assert torch.allclose(q.decode_codes(out.codes), out.quantized, atol=1e-5)
    for bad in (q.codebook_size, -1):
        codes = out.codes.clone()
        codes.view(-1)[3] = bad
        with pytest.raises(ValueError, match=rf"\[0, {q.codebook_size}\)"):
            q.decode_codes(codes)


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown quantizer kind 'pq'"):
        quantize.create("pq", dim=4)


def test_kmeans_init_beats_random_init():
    z = clusters(512)[None]
    errors = {}
    for kmeans_init in (True, False):
        torch.manual_seed(0)
        q = VectorQuantizer(16, codebook_size=16, kmeans_init=kmeans_init, dead_code_threshold=0)
        errors[kmeans_init] = F.mse_loss(q(z).quantized, z).item()  # the first step quantizes with the initial codebook
    assert errors[True] < 0.1 * errors[False]


def test_ema_update_matches_one_hot_formula():
    torch.manual_seed(0)
    q = VectorQuantizer(8, codebook_size=16, kmeans_init=False, dead_code_threshold=0, decay=0.9)
    old_sum, old_size = q.embed_sum.clone().double(), q.cluster_size.clone().double()
    z = torch.randn(1, 300, 8)
    codes = q(z).codes.flatten()
    one_hot = F.one_hot(codes, 16).double()
    size = 0.9 * old_size + 0.1 * one_hot.sum(0)
    embed_sum = 0.9 * old_sum + 0.1 * one_hot.T @ z[0].double()
    n = size.sum()
    expected = embed_sum / ((size + 1e-5) / (n + 16e-5) * n)[:, None]
    assert torch.allclose(q.codebook.double(), expected, atol=1e-5)


@pytest.mark.parametrize("ema", [True, False])
def test_dead_code_restart_takes_effect_and_stays(ema):
    torch.manual_seed(0)
    z = clusters(256, k=4)[None]
    q = VectorQuantizer(16, codebook_size=4, ema=ema, kmeans_init=False, dead_code_threshold=1.0, decay=0.5)
    with torch.no_grad():
        q.codebook.copy_(z[0, :4] * 0 + 100.0)  # every code far from the data: all but one unused
        q.codebook[0] = z[0].mean(0)
    q.cluster_size.fill_(1.0)
    if ema:
        q.embed_sum.copy_(q.codebook.detach())
    far = q.codebook.detach().clone()

    def distance_to_data(codebook):
        return torch.cdist(codebook.detach(), z[0]).min(1).values

    q(z)
    restarted = distance_to_data(q.codebook)[1:]
    assert (restarted < 0.5).all()  # codes 1..3 now sit on data points, not at 100
    for _ in range(3):
        out = q(z)
    after = distance_to_data(q.codebook)[1:]
    assert (after < 1.0).all() and not torch.isclose(q.codebook[1:], far[1:]).any()  # not written back
    assert out.stats["usage"] == 1.0


def test_cosine_codebook_stays_normalised_and_searches_by_angle():
    torch.manual_seed(0)
    q = VectorQuantizer(8, codebook_size=32, cosine=True)
    z = torch.randn(1, 200, 8)
    for _ in range(3):
        q(z)
    assert torch.allclose(q.codebook.norm(dim=-1), torch.ones(32), atol=1e-5)
    q.eval()
    codes = q(z * 7.0).codes  # scale does not change the angle
    expected = (F.normalize(z[0], dim=-1) @ q.codebook.T).argmax(-1)
    assert torch.equal(codes[0], expected)


def test_factorized_codes_live_in_low_dim():
    q = VectorQuantizer(64, codebook_size=32, codebook_dim=4)
    assert q.codebook.shape == (32, 4)
    assert q(torch.randn(2, 40, 64)).quantized.shape == (2, 40, 64)


def test_rvq_error_decreases_with_levels():
    torch.manual_seed(0)
    q = ResidualVQ(8, codebook_size=16, num_quantizers=4)
    z = torch.randn(4, 128, 8)
    for _ in range(5):
        q(z)
    q.eval()
    errors = [F.mse_loss(q(z, num_quantizers=n).quantized, z).item() for n in range(1, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    out = q(z, num_quantizers=2)
    assert out.codes.shape == (4, 128, 2)
    assert torch.allclose(q.decode_codes(out.codes), out.quantized, atol=1e-5)
    with pytest.raises(ValueError, match="num_quantizers"):
        q(z, num_quantizers=5)


def test_quantizer_dropout_gives_each_example_a_prefix_of_levels():
    torch.manual_seed(0)
    q = ResidualVQ(8, codebook_size=16, num_quantizers=4, quantizer_dropout=1.0, kmeans_init=False, decay=1.0, dead_code_threshold=0)
    z = torch.randn(32, 10, 8)
    train = q(z).quantized
    q.eval()
    prefixes = torch.stack([q(z, num_quantizers=n).quantized for n in range(1, 5)])  # [4, B, N, D]
    match = (prefixes - train).abs().amax(dim=(2, 3)) < 1e-5  # [levels, B]
    assert (match.sum(0) == 1).all()  # every example equals exactly one prefix
    assert len(set(match.float().argmax(0).tolist())) >= 3  # with several different lengths


@pytest.mark.parametrize("name", ["fsq", "rfsq"])
def test_bf16_autocast_keeps_every_fsq_code_reachable(name):
    levels = (8, 8, 8, 6, 5)  # 15360 codes: far above bf16's 256 exact integers
    q = FSQ(5, levels) if name == "fsq" else quantize.create("rfsq", dim=5, levels=levels, num_quantizers=1)
    # FSQ acts per dimension: find an input in the middle of each level's range on a 1-D
    # sweep (exact in bf16 too), then take all combinations
    sweep = torch.linspace(-4, 4, 4001)
    digits = q(sweep[None, :, None].expand(1, -1, 5)).codes.flatten()
    per_dim = []
    radix = 1
    for n in levels:
        level = digits // radix % n
        hits = [(level == v).nonzero()[:, 0] for v in range(n)]
        per_dim.append(torch.stack([sweep[h[len(h) // 2]] for h in hits]).bfloat16().float())
        radix *= n
    grid = torch.cartesian_prod(*per_dim)[None].bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = q(grid).codes.flatten()
    assert codes.unique().numel() == q.codebook_size == 15360


def test_vq_under_bf16_autocast_searches_in_fp32():
    torch.manual_seed(0)
    q = VectorQuantizer(8, codebook_size=256, kmeans_init=False).eval()
    z = torch.randn(1, 500, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = q(z)
    assert torch.equal(auto.codes, q(z).codes)


def test_lfq_codes_are_sign_bits():
    torch.manual_seed(0)
    q = quantize.create("lfq", dim=4, codebook_size=16).eval()
    z = torch.randn(1, 100, 4)
    codes = q(z).codes[0]
    bits = (z[0] > 0).long() * torch.tensor([8, 4, 2, 1])
    assert torch.equal(codes, bits.sum(-1))


# DDP: two gloo ranks on CPU, each with its own data


def _ddp_worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)  # same initial codebook on both ranks
    ema = VectorQuantizer(8, codebook_size=16, kmeans_init=False, dead_code_threshold=0, decay=0.5)
    z = torch.randn(2, 1, 100, 8)[rank]
    usage = ema(z).stats["usage"]

    torch.manual_seed(rank)  # k-means and restarts would differ per rank without the broadcast
    km = VectorQuantizer(8, codebook_size=16, dead_code_threshold=5.0)
    km(z + rank)
    torch.save((ema.codebook, usage, km.codebook), out_dir / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_all_reduces_statistics_and_broadcasts_init(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, tmp_path), nprocs=2)

    torch.manual_seed(0)
    single = VectorQuantizer(8, codebook_size=16, kmeans_init=False, dead_code_threshold=0, decay=0.5)
    both = torch.randn(2, 1, 100, 8).reshape(1, 200, 8)
    usage = single(both).stats["usage"]

    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    for codebook, rank_usage, _ in results:
        assert torch.allclose(codebook, single.codebook, atol=1e-5)  # EMA on the global batch
        assert rank_usage == usage
    assert torch.equal(results[0][2], results[1][2])  # same k-means init and restarts
