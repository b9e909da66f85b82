import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tokzoo.kernels import nearest_code

CUDA = torch.cuda.is_available()
# Without a GPU, Triton runs only in its interpreter, and only if TRITON_INTERPRET=1 was set
# before triton was first imported (lightning and vector-quantize-pytorch import it), so the
# CPU run of the kernel tests happens in a fresh process: test_triton_kernels_in_interpreter.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@pytest.fixture
def triton_device():
    pytest.importorskip("triton")
    if CUDA:
        return "cuda"
    if not INTERPRET:
        pytest.skip("runs in a TRITON_INTERPRET=1 subprocess (test_triton_kernels_in_interpreter)")
    return "cpu"


@pytest.mark.skipif(CUDA or INTERPRET, reason="the Triton tests run directly in this process")
def test_triton_kernels_in_interpreter():
    pytest.importorskip("triton")
    child = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-o", "addopts=", "-q", "-k", "triton", "-p", "no:cacheprovider"],
        env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert child.returncode == 0, child.stdout[-5000:] + child.stderr[-2000:]
    assert " passed" in child.stdout and " failed" not in child.stdout, child.stdout[-2000:]


def true_distances(x, codebook, metric):
    x, codebook = x.double(), codebook.double()
    if metric == "cosine":
        return 1 - F.normalize(x, dim=-1) @ F.normalize(codebook, dim=-1).T
    return torch.cdist(x, codebook).square()


def assert_nearest(x, codebook, idx, dist, metric="l2", rtol=1e-5):
    """The chosen code is a true nearest one up to rounding (exact index equality fails on near-ties)."""
    ref = true_distances(x, codebook, metric)
    scale = ref.min(1).values.abs() + x.double().square().sum(-1) * 1e-6 + 1e-9
    chosen = ref.gather(1, idx[:, None].cpu()).squeeze(1)
    assert idx.dtype == torch.long and dist.dtype == torch.float32
    assert ((chosen - ref.min(1).values) <= rtol * scale).all()
    assert torch.allclose(dist.double().cpu(), chosen, rtol=1e-4, atol=1e-4)


# N, K, D: ragged tiles, tiny D (padded to 16), D that needs several chunks
SHAPES = [(300, 1000, 40), (77, 300, 300), (50, 70, 8), (129, 257, 12)]


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("n,k,d", SHAPES)
def test_torch_backend_matches_float64(n, k, d, metric):
    torch.manual_seed(0)
    x, codebook = torch.randn(n, d), torch.randn(k, d)
    idx, dist = nearest_code(x, codebook, metric=metric, backend="torch", chunk_elements=4096)
    assert_nearest(x, codebook, idx, dist, metric)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("n,k,d", SHAPES)
def test_triton_backend_matches_float64(triton_device, n, k, d, metric):
    torch.manual_seed(0)
    x, codebook = torch.randn(n, d, device=triton_device), torch.randn(k, d, device=triton_device)
    idx, dist = nearest_code(x, codebook, metric=metric, backend="triton")
    assert_nearest(x, codebook, idx, dist, metric)


def test_triton_non_contiguous_inputs(triton_device):
    torch.manual_seed(0)
    x = torch.randn(40, 200, device=triton_device).T[:, ::2]      # [200, 20], strides (1, 400)
    codebook = torch.randn(300, 40, device=triton_device)[::2, 7:27]  # [150, 20], row stride 80
    assert not x.is_contiguous() and not codebook.is_contiguous()
    idx, dist = nearest_code(x, codebook, backend="triton")
    assert_nearest(x, codebook, idx, dist)


@pytest.mark.skipif(not CUDA, reason="the interpreter's bf16 tl.dot is wrong; checked on GPU only")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_triton_half_precision_on_gpu(dtype):
    torch.manual_seed(0)
    x, codebook = torch.randn(4096, 256, device="cuda", dtype=dtype), torch.randn(4096, 256, device="cuda", dtype=dtype)
    idx, dist = nearest_code(x, codebook, backend="triton")
    assert_nearest(x, codebook, idx, dist, rtol=1e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_torch_half_precision_inputs(dtype):
    torch.manual_seed(0)
    x, codebook = torch.randn(200, 32).to(dtype), torch.randn(500, 32).to(dtype)
    idx, dist = nearest_code(x, codebook, backend="torch")
    assert_nearest(x, codebook, idx, dist)


def duplicated_codebook(d, device):
    """300 distinct codes, then the same 300 again twice: every query has a 3-way tie."""
    base = torch.randn(300, d, device=device)
    return torch.cat([base, base, base])


def test_ties_go_to_lowest_index_torch():
    torch.manual_seed(0)
    codebook = duplicated_codebook(16, "cpu")
    x = codebook[torch.randint(0, 900, (64,))] + 0.01 * torch.randn(64, 16)
    for chunk in (2**24, 4096, 100):  # one tile, tiles across duplicates, tiles within one copy
        idx, _ = nearest_code(x, codebook, backend="torch", chunk_elements=chunk)
        assert (idx < 300).all()
        assert_nearest(x, codebook, idx, _)


def test_ties_go_to_lowest_index_triton(triton_device):
    torch.manual_seed(0)
    codebook = duplicated_codebook(16, triton_device)  # copies straddle the 128-code tiles
    x = codebook[torch.randint(0, 900, (64,), device=triton_device)]
    idx, dist = nearest_code(x, codebook, backend="triton")
    assert (idx < 300).all()
    assert_nearest(x, codebook, idx, dist)


def test_auto_backend_on_cpu_uses_reference_path():
    torch.manual_seed(0)
    x, codebook = torch.randn(100, 8), torch.randn(50, 8)
    auto = nearest_code(x, codebook)
    ref = nearest_code(x, codebook, backend="torch")
    assert torch.equal(auto[0], ref[0]) and torch.equal(auto[1], ref[1])


def test_torch_backend_never_holds_n_by_k():
    """Peak memory of one call stays far below the N x K distance matrix (32 MB here)."""
    torch.manual_seed(0)
    x, codebook = torch.randn(2048, 8), torch.randn(4096, 8)
    with torch.profiler.profile(profile_memory=True, activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        nearest_code(x, codebook, backend="torch", chunk_elements=2**16)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert 0 < largest <= 4 * 2**16 < 2048 * 4096 * 4 / 100


@pytest.mark.parametrize(
    "x,codebook,message",
    [
        (torch.tensor([[float("nan"), 0.0]]), torch.zeros(4, 2), r"x \(1, 2\) contains NaN or Inf"),
        (torch.zeros(3, 2), torch.tensor([[0.0, float("inf")]]), r"codebook \(1, 2\) contains NaN or Inf"),
        (torch.zeros(3, 2), torch.zeros(4, 5), r"x \(3, 2\) has D=2, codebook \(4, 5\) has D=5"),
        (torch.zeros(0, 2), torch.zeros(4, 2), r"x is empty: \(0, 2\)"),
        (torch.zeros(3, 2), torch.zeros(0, 2), r"K = 0"),
        (torch.zeros(3), torch.zeros(4, 2), r"x \(3,\) and codebook \(4, 2\)"),
    ],
)
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_bad_input_raises(x, codebook, message, backend):
    with pytest.raises(ValueError, match=message):
        nearest_code(x, codebook, backend=backend)


def test_bad_metric_raises():
    with pytest.raises(ValueError, match="metric"):
        nearest_code(torch.zeros(2, 2), torch.zeros(2, 2), metric="dot")
