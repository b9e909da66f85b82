"""Callbacks of the shared loop: step-based checkpoints and reconstruction previews."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import lightning as L


class StepCheckpoint(L.Callback):
    """Save ``path`` every ``every`` generator steps and at the end, atomically.

    Lightning's own step checkpoints count every optimizer's steps (two with a
    discriminator); this one follows the loop's generator-step counter.
    """

    def __init__(self, path: Path, every: int):
        self.path, self.every = Path(path), every

    def _save(self, trainer: L.Trainer) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if int(module.step) % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer, module):
        self._save(trainer)


class PreviewGrid(L.Callback):
    """At each validation, write the family's picture of the first batch to ``folder``.

    ``render(batch, recon) -> uint8 array [H, W, 3]`` belongs to the family: images show
    originals above reconstructions, audio would show spectrograms.
    """

    def __init__(self, render: Callable, folder: Path):
        self.render, self.folder = render, Path(folder)

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx != 0 or not trainer.is_global_zero or trainer.sanity_checking:
            return
        from PIL import Image

        self.folder.mkdir(parents=True, exist_ok=True)
        picture = self.render(batch.detach().float().cpu(), outputs.detach().float().cpu())
        Image.fromarray(picture).save(self.folder / f"step_{int(module.step):07d}.png")
