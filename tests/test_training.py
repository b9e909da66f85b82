"""The shared training loop on a small real model: learning, GAN phase, EMA, exact resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tokzoo.quantize import create as create_quantizer
from tokzoo.training.config import TrainConfig
from tokzoo.training.module import fit, lr_factor


class Images(torch.utils.data.Dataset):
    """16x16 crops of two real photos (scikit-image ships them in its wheel)."""

    def __init__(self, n: int = 8):
        data = pytest.importorskip("skimage.data")
        photos = [torch.tensor(np.asarray(p), dtype=torch.float32).permute(2, 0, 1) / 255
                  for p in (data.astronaut(), data.coffee())]
        g = torch.Generator().manual_seed(0)
        self.items = []
        for i in range(n):
            photo = photos[i % 2]
            y, x = (int(torch.randint(0, s - 128, (1,), generator=g)) for s in photo.shape[1:])
            self.items.append(F.interpolate(photo[None, :, y:y + 128, x:x + 128], size=16, mode="area")[0])

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class TinyVQAutoencoder(nn.Module):
    """A conv encoder, a real VQ quantizer, a conv decoder and a tiny discriminator."""

    def __init__(self, with_discriminator: bool = False):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 16, 3, 1, 1))
        self.quantizer = create_quantizer("vq", dim=16, codebook_size=64, kmeans_init=False)
        self.decoder = nn.Sequential(nn.ConvTranspose2d(16, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 3, 3, 1, 1))
        self.discriminator = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2),
                                           nn.Conv2d(8, 1, 3, 1, 1)) if with_discriminator else None

    def forward(self, x):
        z = self.encoder(x)
        b, c, h, w = z.shape
        q = self.quantizer(z.flatten(2).transpose(1, 2))
        return self.decoder(q.quantized.transpose(1, 2).reshape(b, c, h, w)), q

    def losses(self, batch, step):
        recon, q = self(batch)
        l2 = F.mse_loss(recon, batch)
        return {"loss": l2 + q.loss, "recon": recon, "l2": l2, "usage": q.stats["usage"]}


def _psnr(recon, target):
    return {"psnr": float(10 * torch.log10(1 / F.mse_loss(recon.detach().clamp(0, 1), target)))}


def _config(**overrides):
    base = dict(steps=60, batch_size=4, lr=3e-3, warmup_steps=5, precision="32-true", accelerator="cpu",
                devices=1, num_workers=0, log_every=5, val_every=30, val_batches=2, checkpoint_every=20,
                ema_decay=0.9)
    return TrainConfig(**{**base, **overrides})


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(55, 10, 100, 0.1) == pytest.approx(0.55)


def test_training_learns_and_exports_ema(tmp_path):
    torch.manual_seed(0)
    data = Images()
    model = TinyVQAutoencoder()
    before = _psnr(model(torch.stack(data.items))[0], torch.stack(data.items))["psnr"]
    exported, metrics = fit(model, data, data, _config(), tmp_path, metrics=_psnr, progress=False)
    assert exported is not model  # the EMA copy
    assert metrics["psnr"] > before + 5, (before, metrics)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    logged = (tmp_path / "logs" / "version_0" / "metrics.csv").read_text()
    assert "train/usage" in logged and "val/psnr" in logged


def test_adversarial_phase_counts_generator_steps(tmp_path):
    torch.manual_seed(0)
    data = Images()
    model = TinyVQAutoencoder(with_discriminator=True)
    disc_before = [p.detach().clone() for p in model.discriminator.parameters()]
    fit(model, data, None, _config(steps=20, disc_start=10), tmp_path, progress=False)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert int(ckpt["state_dict"]["step"]) == 20  # not 30: global_step counts both optimizers
    assert ckpt["global_step"] == 20 + 10
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, model.discriminator.parameters()))
    logged = (tmp_path / "logs" / "version_0" / "metrics.csv").read_text()
    assert "train/d_loss" in logged and "train/g_adv" in logged


class CrashesAtStep(TinyVQAutoencoder):
    """Dies like a preempted job once ``crash_at`` generator steps are done."""

    crash_at = 8

    def losses(self, batch, step):
        if step == self.crash_at:
            raise RuntimeError("preempted")
        return super().losses(batch, step)


def test_resume_is_exact(tmp_path):
    data = Images()
    config = _config(steps=12, checkpoint_every=4)
    torch.manual_seed(0)
    straight, _ = fit(TinyVQAutoencoder(), data, None, config, tmp_path / "a", progress=False)

    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="preempted"):
        fit(CrashesAtStep(), data, None, config, tmp_path / "b", progress=False)
    ckpt = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=False)
    assert int(ckpt["state_dict"]["step"]) == 8
    torch.manual_seed(123)  # a resumed run must not depend on the fresh process's random state
    resumed, _ = fit(TinyVQAutoencoder(), data, None, config, tmp_path / "b", progress=False)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name
