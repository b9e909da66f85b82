import io
import math

import numpy as np
import pytest
import scipy.linalg
import skimage.data
import torch
from PIL import Image
from skimage.filters import gaussian
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize
from torchmetrics.image import StructuralSimilarityIndexMeasure

from tokzoo.metrics.image import (EffNetLite0Features, PerceptualLoss, bits_per_image, code_entropy_bits,
                                  codebook_usage, fd_effnet_lite0, fid, frechet_distance, jpeg_webp_at_bytes,
                                  lpips, psnr, ssim)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def to_tensor(arrays) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    arrays = images.permute(0, 2, 3, 1).double().numpy()
    return to_tensor([gaussian(a, sigma=sigma, channel_axis=2) for a in arrays])


@pytest.fixture(scope="module")
def photos():
    """Four real photos resized to 128x160, float64 HWC in [0, 1]."""
    return [resize(getattr(skimage.data, name)(), (128, 160), anti_aliasing=True) for name in PHOTOS]


@pytest.fixture(scope="module")
def distorted(photos):
    """(targets, preds) as float64 HWC arrays: noise, blur and impulse-like distortions."""
    rng = np.random.default_rng(0)
    targets, preds = [], []
    for im in photos:
        for d in (np.clip(im + rng.normal(0, 0.02, im.shape), 0, 1),
                  np.clip(im + rng.normal(0, 0.1, im.shape), 0, 1),
                  gaussian(im, sigma=1.0, channel_axis=2),
                  gaussian(im, sigma=3.0, channel_axis=2),
                  np.clip(im + 0.05 * np.sign(rng.normal(size=im.shape)), 0, 1)):
            targets.append(im)
            preds.append(d)
    return targets, preds


@pytest.fixture(scope="module")
def crops():
    """16 real 96x96 crops (4 per photo), [16, 3, 96, 96] in [0, 1]."""
    out = []
    for name in PHOTOS:
        im = getattr(skimage.data, name)() / 255.0
        h, w = im.shape[:2]
        for fy, fx in ((1, 1), (1, 3), (3, 1), (3, 3)):
            y, x = (h - 96) * fy // 4, (w - 96) * fx // 4
            out.append(im[y:y + 96, x:x + 96])
    return to_tensor(out)


@pytest.fixture(scope="module")
def effnet():
    return EffNetLite0Features()


# ---------------------------------------------------------------- PSNR / SSIM

def test_psnr_matches_skimage_per_image(distorted):
    targets, preds = distorted
    ours = psnr(to_tensor(preds), to_tensor(targets), reduction="none")
    # skimage on the same float32 values we were given
    ref = [peak_signal_noise_ratio(t, p, data_range=1) for t, p in
           zip(to_tensor(targets).permute(0, 2, 3, 1).double().numpy(),
               to_tensor(preds).permute(0, 2, 3, 1).double().numpy())]
    assert np.abs(ours.double().numpy() - np.array(ref)).max() < 0.01
    assert psnr(to_tensor(preds), to_tensor(targets)) == pytest.approx(ours.mean().item(), rel=1e-6)


def test_psnr_identical_is_inf_per_image_and_capped_in_the_mean(photos):
    x = to_tensor(photos[:2])
    y = x.clone()
    y[1] = (y[1] + 0.1).clamp(0, 1)
    per_image = psnr(y, x, reduction="none")
    assert math.isinf(per_image[0]) and per_image[0] > 0
    assert math.isfinite(per_image[1])
    mean = psnr(y, x)
    assert mean.item() == pytest.approx((100.0 + per_image[1].item()) / 2, rel=1e-5)


def test_ssim_valid_border_matches_skimage(distorted):
    targets, preds = distorted
    ours = ssim(to_tensor(preds), to_tensor(targets), reduction="none").double().numpy()
    ref = np.array([structural_similarity(t, p, channel_axis=2, data_range=1, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)
                    for t, p in zip(targets, preds)])
    assert np.abs(ours - ref).max() < 1e-4
    assert ref.min() < 0.4 and ref.max() > 0.9  # the distortions span a real range


def test_ssim_reflect_border_matches_torchmetrics_and_the_two_borders_differ(distorted):
    targets, preds = distorted
    p, t = to_tensor(preds), to_tensor(targets)
    ours = ssim(p, t, reduction="none", border="reflect")
    metric = StructuralSimilarityIndexMeasure(data_range=1.0)
    ref = torch.stack([metric(p[i:i + 1], t[i:i + 1]) for i in range(len(p))])
    assert (ours - ref).abs().max() < 1e-4
    # Why two modes: on these 128x160 photos the references themselves differ by more than
    # 2 x 0.002, so no single definition could sit within 0.002 of both.
    assert (ours - ssim(p, t, reduction="none")).abs().max() > 0.004


def test_ssim_identity_bounds_and_gradient(photos):
    x = to_tensor(photos[:2])
    assert torch.allclose(ssim(x, x, reduction="none"), torch.ones(2), atol=1e-6)
    pred = blur(x, 2.0).requires_grad_(True)
    value = ssim(pred, x)
    value.backward()
    assert 0 < value.item() < 1
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="border"):
        ssim(x, x, border="same")
    with pytest.raises(ValueError, match="H, W >= 11"):
        ssim(x[..., :10, :10], x[..., :10, :10])


# ---------------------------------------------------------------- EfficientNet-Lite0

def test_effnet_lite0_classifies_real_photos(effnet):
    def top5(name):
        im = getattr(skimage.data, name)() / 255.0
        return set(effnet.logits(to_tensor([im])).topk(5).indices[0].tolist())

    assert top5("chelsea") & set(range(281, 286))  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert top5("coffee") & {967, 968}  # espresso, cup


def test_effnet_is_frozen_and_stays_in_eval_mode(effnet):
    parent = torch.nn.Sequential(effnet)
    parent.train()
    assert not effnet.training and not any(m.training for m in effnet.modules())
    assert not any(p.requires_grad for p in effnet.parameters())
    feats = effnet(torch.rand(2, 3, 50, 70))
    assert feats.shape == (2, 1280) and torch.isfinite(feats).all()


# ---------------------------------------------------------------- Fréchet distance

def test_frechet_distance_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(6, 6))
    a = rng.normal(size=(200, 6)) @ mix
    b = rng.normal(size=(150, 6)) @ (mix + 0.3 * rng.normal(size=(6, 6))) + 0.5
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(ca @ cb).real
    ref = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca) + np.trace(cb) - 2 * np.trace(root)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0, abs=1e-9)
    # rank-deficient covariances (N < D), as with few images and 1280-d features
    small = rng.normal(size=(5, 40))
    assert frechet_distance(small, small + 1.0) == pytest.approx(40.0, rel=1e-8)
    with pytest.raises(ValueError):
        frechet_distance(a, b[:, :5])


def test_fd_effnet_lite0_zero_on_itself_and_grows_with_blur(crops, effnet):
    with torch.no_grad():
        ref = effnet(crops)
        blurred = {s: effnet(blur(crops, s)) for s in (0.7, 1.5, 3.0)}
    fds = [frechet_distance(ref, f) for f in blurred.values()]
    assert 0 < fds[0] < fds[1] < fds[2]
    # the wrapper: batching (tensors or iterables of batches) does not change features
    head = crops[:8]
    assert fd_effnet_lite0(head, iter(head.split(3)), batch_size=5) == pytest.approx(0, abs=1e-6)
    assert fd_effnet_lite0(head, [blur(head, 1.5)]) == pytest.approx(
        frechet_distance(ref[:8], blurred[1.5][:8]), rel=1e-4)


# ---------------------------------------------------------------- perceptual loss

def test_perceptual_loss_zero_monotone_differentiable(crops):
    loss = PerceptualLoss()
    x = crops[:4]
    assert loss(x, x).item() == pytest.approx(0, abs=1e-7)
    values = [loss(blur(x, s), x).item() for s in (0.7, 1.5, 3.0)]
    assert 0 < values[0] < values[1] < values[2]
    pred = blur(x, 1.5)[..., :32, :40].requires_grad_(True)  # any H, W >= 32
    out = loss(pred, x[..., :32, :40])
    out.backward()
    assert out.dim() == 0 and out.item() > 0
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())
    with pytest.raises(ValueError, match="32"):
        loss(x[..., :31, :40], x[..., :31, :40])


# ---------------------------------------------------------------- code statistics

def test_code_statistics_by_hand():
    codes = torch.tensor([[0, 0, 1, 3], [0, 0, 1, 3]])
    assert codebook_usage(codes, 8) == pytest.approx(3 / 8)
    # p = (1/2, 1/4, 1/4): 1/2 * 1 + 2 * 1/4 * 2 = 1.5 bits
    assert code_entropy_bits(codes, 8) == pytest.approx(1.5)
    assert code_entropy_bits(torch.arange(16), 16) == pytest.approx(4.0)
    assert code_entropy_bits(torch.zeros(5, dtype=torch.long), 16) == pytest.approx(0.0)
    assert bits_per_image(32, 4096) == pytest.approx(384.0)
    assert bits_per_image(256, 1000) == pytest.approx(256 * math.log2(1000))
    with pytest.raises(ValueError, match="outside"):
        codebook_usage(torch.tensor([0, 8]), 8)


# ---------------------------------------------------------------- JPEG / WebP baseline

def test_jpeg_webp_respect_the_budget_and_improve_with_it(crops):
    images = crops[::2]
    budgets = (600, 1200, 2400)
    reports = [jpeg_webp_at_bytes(images, b) for b in budgets]
    for codec in ("jpeg", "webp"):
        assert all(r[codec]["bytes"] <= b for r, b in zip(reports, budgets))
        psnrs = [r[codec]["psnr"] for r in reports]
        assert psnrs[0] < psnrs[1] < psnrs[2]
        assert reports[0][codec]["ssim"] < reports[2][codec]["ssim"]
    # per image: the chosen quality fits, the next one up does not
    for img in images[:3]:
        single = img[None]
        pil = Image.fromarray((single[0].permute(1, 2, 0) * 255).round().byte().numpy())
        for codec, fmt, options in (("jpeg", "JPEG", {"optimize": True}), ("webp", "WEBP", {})):
            r = jpeg_webp_at_bytes(single, 1200)[codec]
            assert r["bytes"] <= 1200
            q = int(r["quality"])
            if q < 100:
                buf = io.BytesIO()
                pil.save(buf, format=fmt, quality=q + 1, **options)
                assert len(buf.getvalue()) > 1200


def test_jpeg_webp_unreachable_budget_reports_real_bytes(crops):
    report = jpeg_webp_at_bytes(crops[:2], 50)
    for codec in ("jpeg", "webp"):
        assert report[codec]["quality"] == 1
        assert report[codec]["bytes"] > 50


# ---------------------------------------------------------------- torchmetrics, offline only

def test_lpips_and_fid_raise_clearly_without_cached_weights(tmp_path, monkeypatch, crops):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: nothing may download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    x = crops[:2]
    with pytest.raises(RuntimeError, match=r"lpips.* needs (the package 'torchvision'|the weights file)"):
        lpips(x, x)
    with pytest.raises(RuntimeError, match=r"fid.* needs (the package 'torch_fidelity'|the weights file)"):
        fid(x, x)
    assert not any(tmp_path.rglob("*.pth"))
