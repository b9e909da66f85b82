"""Torch datasets for the neural families: images from folders, files, ``.tar`` shards and
built-in samples (the specs of :func:`tokzoo.datasets.image_files`).

Why an ``IterableDataset``: a map-style dataset gets a ``DistributedSampler`` under DDP
(Lightning injects one), and that sampler pads the last rank with repeated samples, so
sharded encoding writes duplicate keys. Here every rank, then every DataLoader worker,
takes a disjoint stride of one shared order: an epoch reads each image exactly once.
Training trims that order to a multiple of the world size so that all ranks run the same
number of steps (at most world_size - 1 images sit an epoch out, different ones each
epoch); evaluation keeps every image, so ranks may differ by one.

Why skips are counted in two places: opening every file's header up front is cheap (a
few kB each) and catches most bad files (empty, not an image, unknown format) in the
main process, before any worker starts, so an unreadable dataset is a ValueError at once.
A truncated file only fails while its pixels decode, in whichever worker process reads
it; that worker drops it and appends a line to a skip log on disk, which the dataset's
``stats`` merges in when read. A file serves every start method (fork, spawn) and needs
nothing from the consumer: batches stay plain tensors for the default collate.
"""
from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import tempfile
import weakref
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from tokzoo.datasets import IMAGE_SUFFIXES, ReadStats, image_files, split_files

__all__ = ["ImageDataset", "split_files"]

#: What Pillow raises on a file that is not an image, or one whose data is broken.
_BAD_IMAGE = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
              Image.DecompressionBombError)


class _Item(NamedTuple):
    key: str     # the file's path, or "<shard>/<member>" for a tar member
    path: str    # the file that holds the bytes
    offset: int  # where a tar member's bytes start; -1 for a whole file
    size: int    # bytes


def _open(item: _Item) -> Image.Image:
    if item.offset < 0:
        return Image.open(item.path)
    with open(item.path, "rb") as f:
        f.seek(item.offset)
        return Image.open(io.BytesIO(f.read(item.size)))


def _scan(path: Path) -> tuple[list[_Item], list[tuple[str, str]]]:
    """The readable-looking images in one file or shard, and the skipped ones with why."""
    if path.suffix.lower() != ".tar":
        try:
            with Image.open(path):
                return [_Item(str(path), str(path), -1, path.stat().st_size)], []
        except _BAD_IMAGE as err:
            return [], [(str(path), f"not an image: {err}")]
    items, skipped = [], []
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                key = f"{path}/{member.name}"
                try:
                    with Image.open(tar.extractfile(member)):
                        items.append(_Item(key, str(path), member.offset_data, member.size))
                except _BAD_IMAGE as err:
                    skipped.append((key, f"not an image: {err}"))
    except (tarfile.TarError, OSError) as err:  # what was indexed before the damage stays
        skipped.append((str(path), f"unreadable tar: {err}"))
    return items, skipped


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: transparency composited on white, 16-bit grey scaled (Pillow clips it)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        grey = np.asarray(image, dtype=np.float32) / (257 if image.mode != "F" else 1 / 255)
        image = Image.fromarray(np.clip(grey, 0, 255).round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


def _rank_world() -> tuple[int, int] | None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return None


class ImageDataset(torch.utils.data.IterableDataset):
    """Images as float tensors ``[3, image_size, image_size]`` in [0, 1].

    ``train=True``: a random square crop (side a ``crop_scale`` share of the shorter
    side, so the aspect is kept), resized, flipped left-right half the time, in a
    shuffled order that changes each epoch (call :meth:`set_epoch`, or keep workers
    persistent: each pass over a copy advances it). ``train=False``: the centre square,
    resized (the same as resizing the shorter side, then centre-cropping), in file order.
    Smaller images are upscaled. ``keys=True`` yields ``(key, image)`` pairs, for writing
    codes per file. Skipped files land in the ``stats`` given; read them through
    ``dataset.stats`` after a pass, which first merges what worker processes logged.
    """

    def __init__(self, specs: Sequence[str | Path], image_size: int, train: bool = True,
                 stats: ReadStats | None = None, *, keys: bool = False,
                 crop_scale: tuple[float, float] = (0.8, 1.0), seed: int = 0):
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        self.image_size, self.train, self.keys = image_size, train, keys
        self.crop_scale, self.seed, self.epoch = crop_scale, seed, 0
        self._stats = stats if stats is not None else ReadStats()
        with ThreadPoolExecutor(min(32, 4 * (os.cpu_count() or 1))) as pool:  # I/O bound
            scans = list(pool.map(_scan, image_files(specs)))
        self.items = [item for items, _ in scans for item in items]
        for _, skipped in scans:
            for key, reason in skipped:
                self._stats.skip(key, reason)
        if not self.items:
            raise ValueError(f"no readable image in {', '.join(map(str, specs))}")
        self._stats.documents += len(self.items)
        self._stats.bytes += sum(item.size for item in self.items)
        fd, self._log = tempfile.mkstemp(prefix="tokzoo-skips-", suffix=".jsonl")
        os.close(fd)
        weakref.finalize(self, _unlink, self._log)
        self._log_read = 0                # bytes of the log already merged into stats
        self._failed: set[str] = set()    # keys merged (a bad file fails every epoch)
        self._passes = 0    # passes over this copy (a persistent worker keeps its copy)
        self._dist = _rank_world()

    @property
    def stats(self) -> ReadStats:
        """The caller's ReadStats: ``documents`` and ``bytes`` count the readable images,
        ``skipped`` the files that failed their header check or, in any process so far,
        their decoding (those leave the counts)."""
        with open(self._log, "rb") as f:
            f.seek(self._log_read)
            lines = f.read().splitlines(keepends=True)
        for line in lines:
            if not line.endswith(b"\n"):
                break  # being written: the next read takes it
            self._log_read += len(line)
            key, reason, size = json.loads(line)
            if key not in self._failed:
                self._failed.add(key)
                self._stats.skip(key, reason)
                self._stats.documents -= 1
                self._stats.bytes -= size
        return self._stats

    def set_epoch(self, epoch: int) -> None:
        """Make the training order that of ``epoch`` (Lightning calls this on samplers
        only: a training loop with non-persistent workers calls it on the dataset)."""
        self.epoch = epoch

    def _placement(self) -> tuple[int, int]:
        return _rank_world() or self._dist or (0, 1)

    def __getstate__(self) -> dict:
        # Pickled for a spawned worker in the main process: pass on its rank and world.
        return {**self.__dict__, "_dist": _rank_world() or self._dist}

    def _shard(self) -> list[_Item]:
        """This rank's and this worker's part of this epoch's order."""
        rank, world = self._placement()
        order = np.arange(len(self.items))
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch + self._passes])
            order = rng.permutation(order)[: len(order) // world * world]
        order = order[rank::world]
        info = torch.utils.data.get_worker_info()
        if info is not None:
            order = order[info.id::info.num_workers]
        return [self.items[i] for i in order]

    def __len__(self) -> int:
        """Images this rank reads per epoch, if none is skipped while decoding."""
        rank, world = self._placement()
        n = len(self.items)
        return n // world if self.train else len(range(rank, n, world))

    def __iter__(self) -> Iterator:
        shard = self._shard()
        self._passes += 1
        for item in shard:
            try:
                image = self._load(item)
            except _BAD_IMAGE as err:
                line = json.dumps([item.key, f"unreadable image: {err}", item.size]) + "\n"
                fd = os.open(self._log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                try:  # one write per line: lines from several processes never interleave
                    os.write(fd, line.encode("utf-8"))
                finally:
                    os.close(fd)
                continue
            yield (item.key, image) if self.keys else image

    def _load(self, item: _Item) -> torch.Tensor:
        size = self.image_size
        with _open(item) as image:
            # JPEG: decode at 1/2, 1/4 or 1/8 scale when even the smallest crop stays sharp.
            image.draft("RGB", (int(size / self.crop_scale[0]) + 1,) * 2 if self.train else (size, size))
            image = _to_rgb(ImageOps.exif_transpose(image))
        w, h = image.size
        side = min(w, h)
        if self.train:
            low, high = self.crop_scale
            side *= low + (high - low) * torch.rand(()).item()
            x, y = (w - side) * torch.rand(()).item(), (h - side) * torch.rand(()).item()
        else:
            x, y = (w - side) / 2, (h - side) / 2
        image = image.resize((size, size), Image.BICUBIC, box=(x, y, x + side, y + side))
        if self.train and torch.rand(()).item() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div_(255)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
