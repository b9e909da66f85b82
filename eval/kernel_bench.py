"""Benchmark tokzoo.kernels.nearest_code against torch.cdist + argmin and against
vector-quantize-pytorch's VectorQuantize search.

For every (dtype, N, K, D) cell and method: median time, achieved TFLOP/s (2 N K D / time),
peak extra memory over the inputs, and the floor: the same FLOPs at the matmul peak of
this device, measured in the same run. A baseline whose estimated N x K working set
exceeds --max-gb is skipped and marked, instead of running out of memory.

    python eval/kernel_bench.py --device cpu             # CPU-sized subset, 2 cores take ~15 min
    python eval/kernel_bench.py --device cuda --grid full

The run's section of the report (--out) is replaced in place, so CPU and GPU runs share
one file.
"""

import argparse
import gc
import os
import re
import statistics
import time
from pathlib import Path

import torch
from vector_quantize_pytorch import VectorQuantize

from tokzoo.kernels import nearest_code

GRIDS = {
    "full": dict(n=[16384, 65536, 262144], k=[1024, 4096, 16384, 65536], d=[8, 12, 32, 256]),
    # 2 CPU cores: the full grid would take hours
    "cpu": dict(n=[16384, 65536], k=[1024, 4096, 16384], d=[8, 32, 256]),
}
EXTRA_CPU_CELLS = [(262144, 65536, 8)]  # the "never OOM at N = 256k, K = 65k" check
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# peak bytes per N x K element, measured on CPU at N = 16k, K = 1k-4k: cdist up to 6
# (distances and a temporary); VectorQuantize up to 18 (fp32 distances, its cdist
# temporaries, an int64 + fp32 one-hot)
NK_BYTES = {"cdist+argmin": 6, "vector-quantize-pytorch": 18}


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory above the starting point: CUDA allocator stats, or Linux peak RSS (VmHWM)."""

    def __init__(self, device):
        self.device = device

    def _rss(self, key):
        return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024

    def __enter__(self):
        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.start = self._rss("VmRSS")
        return self

    def __exit__(self, *exc):
        sync(self.device)
        peak = torch.cuda.max_memory_allocated() if self.device == "cuda" else self._rss("VmHWM")
        self.extra = max(0, peak - self.start)


def timed(fn, device, budget_s, reduce=statistics.median):
    """Median (or `reduce`) of runs after one warm-up (the warm-up also measures memory)."""
    with PeakMemory(device) as mem:
        fn()
    times = []
    while not times or (sum(times) < budget_s and len(times) < 10):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return reduce(times), mem.extra


def matmul_peak(device, dtype, budget_s):
    """Measured matmul throughput (TFLOP/s) of this device in this dtype: the best run."""
    size = 8192 if device == "cuda" else 2048
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    t, _ = timed(lambda: a @ b, device, budget_s, reduce=min)
    return 2 * size**3 / t / 1e12


def methods(x, codebook):
    n, d = x.shape
    vq = VectorQuantize(dim=d, codebook_size=codebook.shape[0]).to(x.device).eval()
    vq.codebook = codebook.float()
    return {
        "tokzoo": lambda: nearest_code(x, codebook),
        "cdist+argmin": lambda: torch.cdist(x, codebook).argmin(1),
        "vector-quantize-pytorch": lambda: vq(x[None]),
    }


def run(args):
    grid = GRIDS[args.grid]
    cells = [(n, k, d) for n in grid["n"] for k in grid["k"] for d in grid["d"]]
    if args.grid == "cpu":
        cells += EXTRA_CPU_CELLS
    peaks = {name: matmul_peak(args.device, dtype, args.budget) for name, dtype in DTYPES.items() if name in args.dtypes}
    print("matmul peak TFLOP/s:", peaks, flush=True)

    rows = []
    for dtype_name in args.dtypes:
        for n, k, d in cells:
            torch.manual_seed(0)
            x = torch.randn(n, d, device=args.device).to(DTYPES[dtype_name])
            codebook = torch.randn(k, d, device=args.device).to(DTYPES[dtype_name])
            flops = 2 * n * k * d
            row = dict(dtype=dtype_name, n=n, k=k, d=d, floor=flops / (peaks[dtype_name] * 1e12))
            with torch.no_grad():
                for name, fn in methods(x, codebook).items():
                    need = NK_BYTES.get(name, 0) * n * k
                    if need > args.max_gb * 2**30:
                        row[name] = f"skipped (needs ~{need / 2**30:.0f} GB)"
                        continue
                    t, extra = timed(fn, args.device, args.budget)
                    row[name] = dict(time=t, tflops=flops / t / 1e12, extra=extra)
            rows.append(row)
            print(format_row(row), flush=True)
            del x, codebook
    return peaks, rows


def cell(result):
    if isinstance(result, str):
        return result
    return f"{result['time'] * 1e3:.1f} ms, {result['tflops']:.3f} TFLOP/s, {result['extra'] / 2**20:.0f} MiB"


def ratio(row, other):
    if isinstance(row.get(other), dict):
        return f"{row[other]['time'] / row['tokzoo']['time']:.2f}x"
    return "-"


def format_row(row):
    return (
        f"| {row['dtype']} | {row['n']} | {row['k']} | {row['d']} | {row['floor'] * 1e3:.1f} ms | {cell(row['tokzoo'])} "
        f"| {cell(row['cdist+argmin'])} | {cell(row['vector-quantize-pytorch'])} "
        f"| {ratio(row, 'cdist+argmin')} | {ratio(row, 'vector-quantize-pytorch')} |"
    )


def machine(device):
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo).group(1)
    flags = re.search(r"flags\s*:\s*(.+)", cpuinfo).group(1).split()
    isa = "/".join(f for f in ("avx2", "avx512f", "amx_bf16") if f in flags)
    return f"{model} ({isa}), {os.cpu_count()} cores, {torch.get_num_threads()} torch threads (torch {torch.__version__})"


def report(args, peaks, rows):
    both = [r for r in rows if isinstance(r["vector-quantize-pytorch"], dict)]
    vs_vqp = [r["vector-quantize-pytorch"]["time"] / r["tokzoo"]["time"] for r in both]
    vs_cdist = [r["cdist+argmin"]["time"] / r["tokzoo"]["time"] for r in rows if isinstance(r["cdist+argmin"], dict)]
    of_peak = {dt: [r["tokzoo"]["tflops"] / peaks[dt] for r in rows if r["dtype"] == dt and r["d"] == 256] for dt in peaks}
    largest = [r for r in rows if r["n"] * r["k"] == max(r["n"] * r["k"] for r in rows)]
    lines = [
        f"## {args.device.upper()}: {machine(args.device)}",
        "",
        f"Command: `python eval/kernel_bench.py --device {args.device} --grid {args.grid} --dtypes {' '.join(args.dtypes)} --max-gb {args.max_gb}`",
        f"tokzoo backend: {'Triton kernel' if args.device == 'cuda' else 'chunked PyTorch reference (fp32 compute for every input dtype)'}.",
        "Measured matmul peak: " + ", ".join(f"{k} {v:.3f} TFLOP/s" for k, v in peaks.items()) + ".",
        "",
        "Speed-up of tokzoo (baseline time / tokzoo time) over the cells where the baseline ran:",
        f"- vs vector-quantize-pytorch: min {min(vs_vqp):.2f}x, median {statistics.median(vs_vqp):.2f}x, max {max(vs_vqp):.2f}x ({len(vs_vqp)} cells)" if vs_vqp else "- vs vector-quantize-pytorch: no cell ran",
        f"- vs cdist + argmin: min {min(vs_cdist):.2f}x, median {statistics.median(vs_cdist):.2f}x, max {max(vs_cdist):.2f}x ({len(vs_cdist)} cells)" if vs_cdist else "- vs cdist + argmin: no cell ran",
        *(f"- tokzoo's share of the measured {dt} matmul peak at D = 256: min {min(v):.0%}, median {statistics.median(v):.0%}, max {max(v):.0%}" for dt, v in of_peak.items() if v),
        *(f"- largest cell, {r['dtype']} N = {r['n']}, K = {r['k']}, D = {r['d']}: tokzoo {cell(r['tokzoo'])} (its N x K fp32 matrix would be {4 * r['n'] * r['k'] / 2**30:.0f} GiB)" for r in largest),
        "",
        "| dtype | N | K | D | floor | tokzoo | cdist + argmin | vector-quantize-pytorch | vs cdist | vs vqp |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *map(format_row, rows),
    ]
    return "\n".join(lines)


def write_section(path, device, text):
    path = Path(path)
    begin, end = f"<!-- BEGIN {device} -->", f"<!-- END {device} -->"
    old = path.read_text() if path.exists() else "# nearest_code benchmark\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in old:
        new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--grid", choices=list(GRIDS), help="default: full on cuda, cpu on cpu")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--max-gb", type=float, help="skip a baseline whose N x K working set exceeds this (default 8 on cpu, 60 on cuda)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timed runs per method and cell")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "kernels.md"))
    args = parser.parse_args()
    args.grid = args.grid or ("full" if args.device == "cuda" else "cpu")
    args.max_gb = args.max_gb or (60 if args.device == "cuda" else 8)

    peaks, rows = run(args)
    write_section(args.out, args.device, report(args, peaks, rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
