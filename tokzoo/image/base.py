"""What every image tokenizer shares: the [B, 3, H, W] in [0, 1] contract and training.

A family (titok, vq2d) supplies ``build_model`` and its config; encoding, decoding,
input checks, the train/held-out split, the shared training loop and the model card's
held-out metrics are here.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..base import NOT_EXPORTED, NeuralTokenizer

if TYPE_CHECKING:
    import torch


def preview_grid(images: torch.Tensor, recon: torch.Tensor, max_images: int = 8) -> np.ndarray:
    """Originals (top row) above reconstructions (bottom row), as uint8 [H, W, 3]."""
    import torch

    n = min(max_images, len(images))
    rows = [torch.cat(list(x[:n].clamp(0, 1)), dim=2) for x in (images, recon)]
    grid = torch.cat(rows, dim=1)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def reconstruction_metrics(recon: torch.Tensor, images: torch.Tensor) -> dict[str, float]:
    from ..metrics.image import psnr, ssim

    return {"psnr": float(psnr(recon, images)), "ssim": float(ssim(recon, images))}


def _no_grad():
    import torch

    return torch.no_grad()


class ImageTokenizer(NeuralTokenizer):
    modality = "image"
    #: 1D tokenizers trained with token drop decode any prefix; grid tokenizers do not.
    variable_length = False

    @property
    def image_size(self) -> int:
        return self.config.model.image_size

    @property
    def codebook_size(self) -> int:
        return self.model.quantizer.codebook_size

    @property
    def num_tokens(self) -> int:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        """Where the model lives (``to(device)`` moves it)."""
        return next(self.model.parameters()).device

    def to(self, device) -> "ImageTokenizer":
        self.model.to(device)
        return self

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        if not torch.is_tensor(images) or not images.is_floating_point():
            raise ValueError("images must be a float tensor [B, 3, H, W] with values in [0, 1]")
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (self.image_size, self.image_size):
            raise ValueError(f"images must have shape [B, 3, {self.image_size}, {self.image_size}], "
                             f"got {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise ValueError("images is an empty batch")
        if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise ValueError("images must hold finite values in [0, 1]")
        return images.to(self.device)

    def encode(self, images: torch.Tensor, num_tokens: int | None = None) -> torch.Tensor:
        """LongTensor [B, K] (or [B, num_tokens]: the first tokens, for 1D tokenizers)."""
        images = self._check_images(images)
        if num_tokens is not None and not self.variable_length:
            raise ValueError(f"{self.name} always uses {self.num_tokens} tokens; num_tokens cannot be set")
        with _no_grad():
            return self.model.encode(images) if num_tokens is None else self.model.encode(images, num_tokens=num_tokens)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] from codes (any prefix length a 1D tokenizer supports)."""
        import torch

        if not torch.is_tensor(codes) or codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError("codes must be an integer tensor [B, K]")
        if codes.ndim != 2:
            raise ValueError(f"codes must have shape [B, K], got {tuple(codes.shape)}")
        with _no_grad():
            return self.model.decode(codes.long().to(self.device)).clamp(0, 1)

    # -- training ------------------------------------------------------------------------
    def fit(self, data: Sequence[str], *, progress: bool = True, run_dir: str | Path | None = None) -> None:
        """Train on image folders / files / shards / samples; resume from ``run_dir`` if it holds a run."""
        from ..datasets import image_files, split_files
        from ..metrics.image import PerceptualLoss
        from ..training.data import ImageDataset
        from ..training.module import fit

        files = image_files(data)
        if not files:
            raise ValueError(f"no images found in {', '.join(map(str, data))}")
        train_files, heldout_files = split_files(files, self.config.heldout_share)
        train_set = ImageDataset(train_files, self.image_size, train=True)
        val_set = ImageDataset(heldout_files, self.image_size, train=False) if heldout_files else None
        perceptual = PerceptualLoss() if self.config.model.perceptual_weight > 0 else None
        model = self.build_model(perceptual=perceptual)
        run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix=f"tokzoo-{self.name}-"))
        start = time.perf_counter()
        exported, metrics = fit(model, train_set, val_set, self.config.train, run_dir,
                                metrics=reconstruction_metrics, preview=preview_grid, progress=progress)
        self.load_weights({k: v for k, v in exported.state_dict().items() if not k.startswith(NOT_EXPORTED)},
                          source="the trained model")
        self.training = {
            "data": list(map(str, data)),
            "images": len(train_files),
            "heldout_images": len(heldout_files),
            "skipped_files": len(train_set.stats.skipped),  # includes what the loader workers met
            "steps": self.config.train.steps,
            "wall_time_s": round(time.perf_counter() - start, 1),
            "run_dir": str(run_dir),
            "metrics": {k: v for k, v in metrics.items() if k in ("psnr", "ssim", "l2", "usage", "perplexity")},
            "metrics_data": f"{len(heldout_files)} held-out images (EMA weights)",
        }

    def measure(self, images: torch.Tensor, num_tokens: int | None = None) -> dict[str, Any]:
        """Reconstruction metrics of encode -> decode on ``images``."""
        recon = self.decode(self.encode(images, num_tokens=num_tokens))
        return reconstruction_metrics(recon.cpu(), images.cpu())

    # -- whole folders (the CLI's encode / decode / eval) ---------------------------------
    def _batches(self, specs: Sequence[str | Path], batch_size: int, stats=None):
        from torch.utils.data import DataLoader

        from ..training.data import ImageDataset

        data = ImageDataset(list(specs), self.image_size, train=False, stats=stats, keys=True)
        return DataLoader(data, batch_size=batch_size), len(data)

    def encode_files(self, specs: Sequence[str | Path], num_tokens: int | None = None, batch_size: int = 32,
                     progress: bool = False, stats=None) -> tuple[list[str], torch.Tensor]:
        """``(keys, codes [N, K])`` for every readable image under ``specs`` (centre crops)."""
        import torch
        from tqdm import tqdm

        loader, total = self._batches(specs, batch_size, stats)
        keys, codes = [], []
        with tqdm(total=total, unit="img", desc="encode", disable=True if not progress else None) as bar:
            for batch_keys, images in loader:
                keys += list(batch_keys)
                codes.append(self.encode(images, num_tokens=num_tokens).cpu())
                bar.update(len(images))
        if not codes:
            raise ValueError(f"no readable image in {', '.join(map(str, specs))}")
        return keys, torch.cat(codes)

    def evaluate(self, specs: Sequence[str | Path], token_counts: Sequence[int | None] = (None,),
                 batch_size: int = 32, grid_images: int = 8) -> tuple[dict[str, dict], np.ndarray]:
        """Held-out quality per token count: PSNR, SSIM, FD-EffNetLite0, bits per image.

        Returns the rows and a picture: originals on top, then one row of reconstructions
        per token count.
        """
        import torch

        from ..metrics.image import bits_per_image, fd_effnet_lite0, psnr, ssim

        loader, _ = self._batches(specs, batch_size)
        originals = torch.cat([images for _, images in loader])
        rows, pictures = {}, [originals[:grid_images]]
        for k in token_counts:
            recon = torch.cat([self.decode(self.encode(x, num_tokens=k)).cpu() for x in originals.split(batch_size)])
            tokens = k or self.num_tokens
            rows[f"{tokens} tokens"] = {
                "tokens": tokens, "bits_per_image": bits_per_image(tokens, self.codebook_size),
                "psnr": float(psnr(recon, originals)), "ssim": float(ssim(recon, originals)),
                "fd_effnet_lite0": float(fd_effnet_lite0(originals, recon)) if len(originals) > 1 else float("nan"),
                "images": len(originals),
            }
            pictures.append(recon[:grid_images])
        grid = torch.cat([torch.cat(list(p), dim=2) for p in pictures], dim=1)
        return rows, (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
