import collections
import io
import json
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tokzoo.datasets as ds
from tokzoo.datasets import ReadStats, image_files, split_files
from tokzoo.training.data import ImageDataset


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _save(image: Image.Image, path: Path, fmt: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **kw)
    return path


def _jpeg_bytes(w=160, h=120, seed=0) -> bytes:
    out = io.BytesIO()
    _noise(w, h, seed).save(out, "JPEG", quality=90)
    return out.getvalue()


def _truncated_jpeg(path: Path) -> Path:
    """A JPEG whose header is whole but whose scan data stops halfway."""
    data = _jpeg_bytes(seed=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def _by_name(dataset: ImageDataset) -> dict[str, torch.Tensor]:
    return {Path(key).name: image for key, image in dataset}


def test_formats_modes_and_skips(tmp_path):
    root = tmp_path / "photos"
    _save(_noise(120, 80), root / "a.jpg")
    _save(_noise(90, 90, 1), root / "sub" / "B.PNG")
    _save(_noise(64, 48, 2), root / "c.webp", lossless=True)
    _save(_noise(50, 70, 3), root / "d.bmp")
    _save(Image.new("L", (40, 40), 100), root / "grey.png")
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # red, fully transparent
    _save(rgba, root / "clear.png")
    palette = Image.new("P", (40, 40), 3)
    palette.putpalette([0, 0, 0] * 3 + [0, 0, 255] + [0, 0, 0] * 252)
    _save(palette, root / "pal.png", transparency=3)  # palette index 3 is transparent
    _save(Image.fromarray(np.full((40, 40), 32896, np.uint16)), root / "deep.png")  # 16-bit
    _save(Image.new("RGB", (3, 2), (0, 255, 0)), root / "tiny.png")
    _save(Image.new("CMYK", (40, 40), (0, 0, 0, 255)), root / "cmyk.jpg")
    _truncated_jpeg(root / "cut.jpg")
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("not a picture\n")
    (root / "notes.txt").write_text("ignored: not an image suffix\n")
    _save(_noise(30, 30), root / ".cache" / "hidden.png")
    with tarfile.open(tmp_path / "shard.tar", "w") as tar:
        for name, data in (("x/0001.jpg", _jpeg_bytes(seed=4)), ("x/0001.json", b"{}"),
                           ("x/0002.png", b"\x89PNG garbage")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    stats = ReadStats()
    dataset = ImageDataset([root, tmp_path / "shard.tar"], 32, train=False, stats=stats, keys=True)
    header_skips = {Path(p).name for p, _ in stats.skipped}
    assert header_skips == {"empty.jpg", "text.png", "0002.png"}
    assert stats.documents == 12  # cut.jpg still looks fine from its header

    images = _by_name(dataset)
    assert sorted(images) == ["0001.jpg", "B.PNG", "a.jpg", "c.webp", "clear.png", "cmyk.jpg",
                              "d.bmp", "deep.png", "grey.png", "pal.png", "tiny.png"]
    for image in images.values():
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
    assert torch.allclose(images["grey.png"], torch.full((3, 32, 32), 100 / 255))
    assert torch.allclose(images["clear.png"], torch.ones(3, 32, 32))  # composited on white
    assert torch.allclose(images["pal.png"], torch.ones(3, 32, 32))
    assert torch.allclose(images["deep.png"], torch.full((3, 32, 32), 128 / 255))  # scaled, not clipped
    assert torch.allclose(images["tiny.png"], torch.tensor([0.0, 1.0, 0.0])[:, None, None].expand(3, 32, 32))
    assert images["cmyk.jpg"].max() < 0.1  # K=255 is black
    assert images["c.webp"].std() > 0.1   # noise survives, not a flat fill

    assert stats.documents == 12  # the ReadStats hears of decode failures when it asks
    merged = dataset.stats
    assert merged is stats
    reasons = dict((Path(p).name, why) for p, why in stats.skipped)
    assert reasons["cut.jpg"].startswith("unreadable image")
    assert reasons["empty.jpg"].startswith("not an image")
    assert stats.documents == 11
    sizes = {p.name: p.stat().st_size for p in root.rglob("*")}
    assert stats.bytes == sum(sizes[n] for n in images if n != "0001.jpg") + len(_jpeg_bytes(seed=4))
    list(dataset)  # a second epoch fails on cut.jpg again: still counted once
    assert [Path(p).name for p, _ in dataset.stats.skipped].count("cut.jpg") == 1


def test_eval_centre_crop_and_train_random_crop_keep_the_aspect(tmp_path):
    ramp = np.tile(np.arange(200, dtype=np.uint8), (100, 1))  # 200 wide, 100 high: value = column
    _save(Image.fromarray(ramp), tmp_path / "ramp.png")
    [centre] = list(ImageDataset([tmp_path], 100, train=False))
    assert torch.allclose(centre[0, 0], torch.arange(50, 150) / 255, atol=1.5 / 255)  # columns 50..149
    assert torch.equal(centre[:, 0], centre[:, 50])  # every row alike: no vertical stretch

    train = ImageDataset([tmp_path], 50, train=True, crop_scale=(0.5, 0.5))
    torch.manual_seed(0)
    crops = [next(iter(train))[0, 0] * 255 for _ in range(40)]
    for crop in crops:  # a 50-px square of the ramp, perhaps mirrored: a 1:1 slope
        assert abs(abs(float(crop[-1] - crop[0])) - 49) < 3
    starts = {round(float(c.min())) for c in crops}
    assert len(starts) > 10  # random positions
    assert {bool(c[-1] > c[0]) for c in crops} == {True, False}  # flips both ways


def _loader_keys(dataset, **kw):
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, **kw)
    keys = []
    for batch_keys, images in loader:
        assert images.shape[1:] == (3, 16, 16)
        keys += batch_keys
    return keys


def test_dataloader_workers_read_each_image_once(tmp_path):
    good = [_save(_noise(24, 24, i), tmp_path / f"{i:02d}.png") for i in range(23)]
    bad = [_truncated_jpeg(tmp_path / f"cut{i}.jpg") for i in range(3)]
    expected = {str(p) for p in good}
    stats = ReadStats()
    for train in (False, True):
        dataset = ImageDataset([tmp_path], 16, train=train, keys=True, stats=stats)
        epochs = [_loader_keys(dataset), _loader_keys(dataset)]
        for keys in epochs:
            assert collections.Counter(keys) == collections.Counter(expected)
        if train:
            dataset.set_epoch(1)
            assert _loader_keys(dataset) != epochs[0]  # a new epoch, a new order
        assert dataset.stats is stats  # merges what the workers logged
    skipped = collections.Counter(Path(p).name for p, _ in stats.skipped)
    assert skipped == {p.name: 2 for p in bad}  # once per dataset, reported from the workers
    assert stats.documents == 2 * len(good)


def test_persistent_workers_reshuffle_each_epoch(tmp_path):
    for i in range(16):
        _save(_noise(20, 20, i), tmp_path / f"{i:02d}.png")
    dataset = ImageDataset([tmp_path], 8, keys=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, persistent_workers=True)
    orders = [[k for keys, _ in loader for k in keys] for _ in range(3)]
    assert all(sorted(o) == sorted(orders[0]) for o in orders)
    assert len({tuple(o) for o in orders}) == 3


def _rank_main(rank: int, world: int, root: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{out}/rendezvous",
                                         rank=rank, world_size=world)
    result = {}
    for train in (False, True):
        dataset = ImageDataset([root], 8, train=train, keys=True)
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2,
                                             multiprocessing_context="fork")
        result[f"train={train}"] = {"keys": [k for keys, _ in loader for k in keys], "len": len(dataset)}
    torch.distributed.destroy_process_group()
    # A spawned worker gets the dataset pickled by its rank: the copy keeps the rank's part.
    result["pickled"] = [k for k, _ in pickle.loads(pickle.dumps(dataset))]
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))


def test_ranks_split_without_padding(tmp_path):
    """Two real gloo ranks, two workers each, 11 images: evaluation reads each once in
    all, never padding a rank with repeats (6 + 5); training gives both ranks 5."""
    root = tmp_path / "images"
    for i in range(11):
        _save(_noise(12, 12, i), root / f"{i:02d}.png")
    torch.multiprocessing.spawn(_rank_main, args=(2, str(root), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    everything = {str(p) for p in root.iterdir()}
    for mode, lengths in (("train=False", [6, 5]), ("train=True", [5, 5])):
        keys = ranks[0][mode]["keys"] + ranks[1][mode]["keys"]
        assert len(keys) == len(set(keys)) and set(keys) <= everything
        assert [len(r[mode]["keys"]) for r in ranks] == [r[mode]["len"] for r in ranks] == lengths
    assert set(ranks[0]["train=False"]["keys"]) | set(ranks[1]["train=False"]["keys"]) == everything
    for r in ranks:
        assert set(r["pickled"]) == set(r["train=True"]["keys"])  # not all 10 of rank 0 of 1


def test_nothing_readable_is_a_value_error(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(ValueError, match=str(tmp_path)):
        ImageDataset([tmp_path], 16)
    with pytest.raises(FileNotFoundError, match="missing"):
        ImageDataset([tmp_path / "missing"], 16)
    with pytest.raises(ValueError, match="unknown sample"):
        image_files(["sample:python-docs"])


def test_builtin_samples_load_offline():
    for name, count in (("skimage", 26), ("sklearn", 2)):
        train, heldout = image_files([f"sample:{name}"]), image_files([f"sample:{name}:heldout"])
        assert train and heldout and not set(train) & set(heldout)
        assert len(train) + len(heldout) == count  # every picture inside the wheel
        stats = ReadStats()
        images = list(ImageDataset([f"sample:{name}", f"sample:{name}:heldout"], 32,
                                   train=False, stats=stats))
        assert len(images) == count and not stats.skipped
        assert all(image.std() > 0.01 for image in images)
    assert image_files(["sample:sklearn"])[0].name == "china.jpg"


def test_split_files_is_stable_and_deterministic(tmp_path):
    names = [f"class{i % 7}/img{i:04d}.jpg" for i in range(2000)]
    train, heldout = split_files([tmp_path / "a" / n for n in names])
    assert 60 < len(heldout) < 140 and len(train) + len(heldout) == 2000
    moved, more = split_files([Path("elsewhere") / n for n in names + ["class9/new.jpg"]])
    assert [p.relative_to(tmp_path / "a") for p in heldout] == \
           [p.relative_to("elsewhere") for p in more if p.name != "new.jpg"]
    _, reseeded = split_files([tmp_path / "a" / n for n in names], seed=1)
    assert set(reseeded) != set(heldout)
    _, tenth = split_files([tmp_path / "a" / n for n in names], heldout_share=0.1)
    assert 150 < len(tenth) < 250
    assert split_files([tmp_path / "x.png", tmp_path / "y.png"]) == ([tmp_path / "x.png"], [tmp_path / "y.png"])
    with pytest.raises(ValueError):
        split_files(names, heldout_share=1.0)


def test_build_image_bench(tmp_path):
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("needs apt-get and dpkg")
    try:
        out = ds.build_image_bench(tmp_path, max_emoji=200)
    except RuntimeError as err:  # offline, or a release without these packages
        pytest.skip(f"could not fetch the Debian packages: {err}")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["emoji/train"]["files"] + meta["emoji/heldout"]["files"] == 200
    photos = meta["photos/train"]["files"] + meta["photos/heldout"]["files"]
    assert photos > 100 and meta["photos/heldout"]["files"] >= 5
    assert "vtest.avi" in meta["left_out"]
    for split in ("train", "heldout"):
        for kind in ("photos", "emoji"):
            files = sorted((out / split / kind).iterdir())
            assert len(files) == meta[f"{kind}/{split}"]["files"]
            assert sum(f.stat().st_size for f in files) == meta[f"{kind}/{split}"]["bytes"]
    train_names = {p.name for p in (out / "train").rglob("*.*")}
    assert not train_names & {p.name for p in (out / "heldout").rglob("*.*")}
    assert "data-baboon.jpg" in train_names | {p.name for p in (out / "heldout").rglob("*")}
    smile = next(out.glob("*/emoji/u1f*.png"))
    with Image.open(smile) as image:
        assert image.mode == "RGB" and image.size == (136, 136)
        assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 20  # a colour picture, not a blank square
    stats = ReadStats()
    assert len(list(ImageDataset([out / "heldout"], 32, train=False, stats=stats))) == \
           meta["photos/heldout"]["files"] + meta["emoji/heldout"]["files"]
    assert not stats.skipped
    assert ds.build_image_bench(tmp_path) == out  # built once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image-bench"]
