"""The shared training loop's settings, importable without torch (registries and configs need it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import check


@dataclass
class TrainConfig:
    """Optimisation and run settings shared by every neural family."""

    steps: int = 100_000
    batch_size: int = 32
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 1e-4
    warmup_steps: int = 1000
    #: Cosine decay ends at lr * min_lr_ratio.
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    #: EMA of the weights (0 turns it off); the EMA weights are exported.
    ema_decay: float = 0.999
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "bf16-mixed"
    #: Generator step at which the discriminator starts (None: no adversarial training).
    disc_start: int | None = None
    disc_weight: float = 0.1
    disc_lr: float | None = None
    lecam_weight: float = 0.001
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    num_workers: int = 2
    log_every: int = 50
    val_every: int = 1000
    #: Held-out batches per validation (and for the final metrics in the model card).
    val_batches: int = 16
    checkpoint_every: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.steps >= 1, "steps", "must be >= 1")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.lr > 0, "lr", "must be positive")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
              "must be two numbers in [0, 1)")
        check(0 <= self.warmup_steps, "warmup_steps", "must be >= 0")
        check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        check(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0: no clipping)")
        check(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1)")
        check(self.disc_start is None or self.disc_start >= 0, "disc_start", "must be >= 0")
        check(self.num_workers >= 0, "num_workers", "must be >= 0")
        for key in ("log_every", "val_every", "val_batches", "checkpoint_every"):
            check(getattr(self, key) >= 1, key, "must be >= 1")
