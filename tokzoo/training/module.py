"""The one training loop for every neural tokenizer, as a LightningModule.

A family hands over a model that fulfils a two-line contract:

- ``model.losses(batch, step) -> dict``: ``"loss"`` (the scalar generator loss, its
  reconstruction, perceptual and quantizer terms already weighted), ``"recon"`` (the
  reconstruction, same shape as the batch) and any scalar logs (codebook usage...);
- ``model.discriminator``: an ``nn.Module`` scoring real vs reconstructed, or ``None``.

The loop adds what every family shares: an adversarial phase (hinge loss, LeCam
regularisation, starting at ``disc_start``), AdamW with linear warmup and cosine decay,
gradient clipping, an EMA copy of the weights (what gets exported), bf16 mixed precision
and distributed training through Lightning's strategies. Optimization is manual because
two optimizers take turns; Lightning's ``global_step`` then counts both optimizers' steps
(Lightning #17958), so the loop keeps its own generator-step counter in a buffer, which
checkpoints save and resumes restore exactly.
"""
from __future__ import annotations

import copy
import math
import random
from typing import Callable

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


class TokenizerModule(L.LightningModule):
    """Trains ``model`` (and its discriminator) with the shared recipe; see the module doc."""

    def __init__(self, model: nn.Module, config: TrainConfig,
                 metrics: Callable[[torch.Tensor, torch.Tensor], dict] | None = None):
        super().__init__()
        self.model = model
        self.config = config
        self.metrics = metrics
        self.automatic_optimization = False
        self.ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay > 0 else None
        if self.ema is not None and getattr(self.ema, "discriminator", None) is not None:
            self.ema.discriminator = None  # only the tokenizer is averaged and exported
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        # LeCam anchors: moving averages of the discriminator's mean logits
        self.register_buffer("lecam_real", torch.zeros(()))
        self.register_buffer("lecam_fake", torch.zeros(()))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # random state too, so a resumed run draws the same crops and token drops
        # (tensors and plain values only: resuming loads checkpoints with weights_only=True)
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        checkpoint["rng"] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        rng = checkpoint.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            random.setstate(rng["python"])
            kind, keys, pos, has_gauss, gauss = rng["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))

    @property
    def discriminator(self) -> nn.Module | None:
        return getattr(self.model, "discriminator", None)

    def _generator_parameters(self):
        disc = self.discriminator
        skip = {id(p) for p in disc.parameters()} if disc is not None else set()
        return [p for p in self.model.parameters() if p.requires_grad and id(p) not in skip]

    def configure_optimizers(self):
        c = self.config
        schedule = lambda step: lr_factor(step, c.warmup_steps, c.steps, c.min_lr_ratio)  # noqa: E731
        opt_g = torch.optim.AdamW(self._generator_parameters(), lr=c.lr, betas=tuple(c.betas),
                                  weight_decay=c.weight_decay)
        optimizers = [opt_g]
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt_g, schedule)]
        if self.discriminator is not None and c.disc_start is not None:
            opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=c.disc_lr or c.lr,
                                      betas=tuple(c.betas), weight_decay=c.weight_decay)
            optimizers.append(opt_d)
            schedulers.append(torch.optim.lr_scheduler.LambdaLR(opt_d, schedule))
        return optimizers, schedulers

    def _clip(self, optimizer) -> None:
        if self.config.grad_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.config.grad_clip, gradient_clip_algorithm="norm")

    def training_step(self, batch, batch_idx):
        c = self.config
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        schedulers = self.lr_schedulers()
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        step = int(self.step)
        adversarial = len(optimizers) > 1 and step >= c.disc_start

        out = self.model.losses(batch, step)
        loss = out["loss"]
        if adversarial:
            g_adv = -self.discriminator(out["recon"]).mean()
            loss = loss + c.disc_weight * g_adv
            out["g_adv"] = g_adv.detach()
        opt_g = optimizers[0]
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._clip(opt_g)
        opt_g.step()
        schedulers[0].step()

        if adversarial:
            opt_d = optimizers[1]
            real = self.discriminator(batch)
            fake = self.discriminator(out["recon"].detach())
            d_loss = _hinge_d(real, fake)
            self.lecam_real.lerp_(real.detach().mean(), 0.01)
            self.lecam_fake.lerp_(fake.detach().mean(), 0.01)
            lecam = F.relu(real.mean() - self.lecam_fake).pow(2) + F.relu(self.lecam_real - fake.mean()).pow(2)
            d_total = d_loss + c.lecam_weight * lecam
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_total)
            self._clip(opt_d)
            opt_d.step()
            schedulers[1].step()
            out["d_loss"] = d_loss.detach()

        self._update_ema()
        self.step += 1
        if step % c.log_every == 0 or step + 1 == c.steps:
            logs = {f"train/{k}": v.detach().float() for k, v in out.items()
                    if k != "recon" and torch.is_tensor(v) and v.numel() == 1}
            logs["train/lr"] = torch.tensor(schedulers[0].get_last_lr()[0])
            self.log_dict(logs, prog_bar=False, sync_dist=False)
            self.log("loss", loss.detach().float(), prog_bar=True)
        if step + 1 >= c.steps:
            self.trainer.should_stop = True
        return loss.detach()

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        decay = min(self.config.ema_decay, (1 + int(self.step)) / (10 + int(self.step)))  # warm start
        live = dict(self.model.named_parameters())
        pairs = [(p, live[n]) for n, p in self.ema.named_parameters() if n in live and live[n].requires_grad]
        if pairs:
            torch._foreach_lerp_([e for e, _ in pairs], [p.detach() for _, p in pairs], 1 - decay)
        live_buffers = dict(self.model.named_buffers())
        for name, buf in self.ema.named_buffers():  # codebook statistics, counters: copied, not averaged
            buf.copy_(live_buffers[name])

    @property
    def export_model(self) -> nn.Module:
        """The weights to export: the EMA copy when there is one."""
        return self.ema if self.ema is not None else self.model

    def validation_step(self, batch, batch_idx):
        model = self.export_model
        out = model.losses(batch, int(self.step))
        logs = {f"val/{k}": v.detach().float() for k, v in out.items()
                if k not in ("recon", "loss") and torch.is_tensor(v) and v.numel() == 1}
        logs["val/loss"] = out["loss"].detach().float()
        if self.metrics is not None:
            logs.update({f"val/{k}": torch.as_tensor(v, dtype=torch.float32)
                         for k, v in self.metrics(out["recon"].float(), batch.float()).items()})
        self.log_dict(logs, sync_dist=True, batch_size=len(batch))
        return out["recon"]


class EpochSampler(torch.utils.data.Sampler):
    """A shuffled order that depends only on (seed, epoch), so a resumed run sees the same
    order as an uninterrupted one (Lightning calls ``set_epoch`` each epoch)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class _Repeated(torch.utils.data.IterableDataset):
    """``data`` read ``times`` times per epoch: a small folder still makes long epochs, so
    per-epoch overhead does not dominate (each pass draws new crops and a new order)."""

    def __init__(self, data, times: int):
        self.data, self.times = data, times

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)

    def __iter__(self):
        for _ in range(self.times):
            yield from self.data

    def __len__(self) -> int:
        return self.times * len(self.data)


#: Fewer batches than this per pass over the data: the pass is repeated within an epoch.
MIN_BATCHES_PER_EPOCH = 50


def fit(model: nn.Module, train_data, val_data, config: TrainConfig, run_dir, *,
        metrics: Callable | None = None, preview: Callable | None = None, progress: bool = True):
    """Train ``model`` on ``train_data`` (a torch Dataset of batches' items); resume from
    ``run_dir/checkpoints/last.ckpt`` when it exists. Returns the model to export (EMA
    weights) and the final held-out metrics.
    """
    from pathlib import Path

    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, IterableDataset

    from .callbacks import PreviewGrid, StepCheckpoint

    run_dir = Path(run_dir)
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = TokenizerModule(model, config, metrics)
    iterable = isinstance(train_data, IterableDataset)
    if iterable and len(train_data) < MIN_BATCHES_PER_EPOCH * config.batch_size:
        train_data = _Repeated(train_data, -(-MIN_BATCHES_PER_EPOCH * config.batch_size // len(train_data)))
    loader_args = dict(batch_size=config.batch_size, num_workers=config.num_workers,
                       persistent_workers=config.num_workers > 0)
    sampler = None if iterable else EpochSampler(len(train_data), config.seed)
    train_loader = DataLoader(train_data, sampler=sampler, drop_last=True, **loader_args)
    val_loader = DataLoader(val_data, shuffle=False, **loader_args) if val_data is not None else None
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    callbacks = [StepCheckpoint(checkpoint, config.checkpoint_every)]
    if preview is not None and val_loader is not None:
        callbacks.append(PreviewGrid(preview, run_dir / "previews"))
    trainer = L.Trainer(
        max_epochs=-1, max_steps=-1, precision=config.precision, accelerator=config.accelerator,
        devices=config.devices, num_nodes=config.num_nodes, strategy=config.strategy,
        logger=CSVLogger(run_dir, name="logs"), callbacks=callbacks, enable_checkpointing=False,
        enable_progress_bar=progress, enable_model_summary=progress, log_every_n_steps=1,
        check_val_every_n_epoch=None, val_check_interval=config.val_every if val_loader else None,
        limit_val_batches=config.val_batches, num_sanity_val_steps=0, default_root_dir=run_dir,
    )
    trainer.fit(module, train_loader, val_loader, ckpt_path=checkpoint if checkpoint.is_file() else None)
    results = {}
    if val_loader is not None:
        [results] = trainer.validate(module, val_loader, verbose=False)
    return module.export_model, {k.removeprefix("val/"): float(v) for k, v in results.items()}
