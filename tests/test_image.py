"""Image families end to end: train from a recipe, save, load, encode, decode, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tokzoo
from tokzoo.cli import main

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "image" / "titok-tiny.yaml"
FAST = {"train.steps": 12, "train.val_every": 6, "train.checkpoint_every": 6, "train.batch_size": 8,
        "train.log_every": 3}


@pytest.fixture(scope="module")
def titok(tmp_path_factory):
    out = tmp_path_factory.mktemp("titok") / "ckpt"
    tok = tokzoo.train(RECIPE, data=["sample:skimage"], out=out, progress=False, **FAST)
    return tok, out


def test_trained_titok_checkpoint(titok):
    tok, out = titok
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["tokenizer"] == "titok" and config["model"]["num_tokens"] == 16
    assert config["training"]["steps"] == 12 and config["training"]["heldout_images"] >= 1
    assert "psnr" in (out / "README.md").read_text()
    assert (Path(f"{out}.run") / "checkpoints" / "last.ckpt").is_file()
    assert list((Path(f"{out}.run") / "previews").glob("*.png"))


def test_load_encode_decode_prefixes(titok):
    tok, out = titok
    loaded = tokzoo.from_pretrained(out)
    images = torch.rand(3, 3, 32, 32)
    codes = loaded.encode(images)
    assert codes.shape == (3, 16) and codes.dtype == torch.long
    assert torch.equal(codes, tok.encode(images))
    assert torch.allclose(loaded.decode(codes), tok.decode(codes))
    for k in (1, 4, 16):
        short = loaded.encode(images, num_tokens=k)
        assert torch.equal(short, codes[:, :k])
        recon = loaded.decode(short)
        assert recon.shape == images.shape and 0 <= recon.min() and recon.max() <= 1


@pytest.mark.parametrize("bad, message", [
    (torch.rand(2, 3, 16, 16), "shape"), (torch.rand(2, 1, 32, 32), "shape"),
    (torch.rand(2, 3, 32, 32) * 2, "in \\[0, 1\\]"), (torch.full((1, 3, 32, 32), float("nan")), "finite"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "float"),
])
def test_encode_rejects_bad_images(titok, bad, message):
    with pytest.raises(ValueError, match=message):
        titok[0].encode(bad)


def test_decode_rejects_bad_codes(titok):
    tok, _ = titok
    with pytest.raises(ValueError):
        tok.decode(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError):
        tok.decode(torch.full((1, 4), tok.codebook_size, dtype=torch.long))
    with pytest.raises(ValueError, match="num_tokens"):
        tok.encode(torch.rand(1, 3, 32, 32), num_tokens=0)


def test_weights_load_strictly(titok, tmp_path):
    from safetensors.torch import load_file, save_file

    _, out = titok
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in out.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    state = load_file(str(out / "model.safetensors"))
    state.pop(next(iter(state)))
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(ValueError, match="missing"):
        tokzoo.from_pretrained(broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        tokzoo.from_pretrained(broken)


def test_vq2d_trains_and_round_trips(tmp_path):
    tok = tokzoo.train("vq2d", data=["sample:skimage"], out=tmp_path / "vq2d", progress=False, **FAST,
                       **{"model.image_size": 32, "model.channels": 16, "model.channel_mult": [1, 2, 2],
                          "model.num_res_blocks": 1, "model.latent_dim": 16, "model.codebook_size": 64,
                          "model.perceptual_weight": 0.0, "model.discriminator": False,
                          "train.precision": "32-true", "train.accelerator": "cpu", "train.devices": 1,
                          "train.num_workers": 0})
    loaded = tokzoo.from_pretrained(tmp_path / "vq2d")
    images = torch.rand(2, 3, 32, 32)
    assert loaded.encode(images).shape == (2, 64)
    assert loaded.decode(loaded.encode(images)).shape == images.shape
    with pytest.raises(ValueError, match="always uses 64 tokens"):
        tok.encode(images, num_tokens=8)


def test_cli_encode_decode_eval_images(titok, tmp_path, capsys):
    _, model = titok
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert main(["encode", str(model), str(folder), "--out", str(tmp_path / "codes.npz"), "--num-tokens", "8",
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "encoded 3 image(s)" in err and "1 file(s) skipped" in err
    with np.load(tmp_path / "codes.npz") as data:
        assert data["codes"].shape == (3, 8) and len(data["keys"]) == 3
    assert main(["decode", str(model), str(tmp_path / "codes.npz"), "--out", str(tmp_path / "recon")]) == 0
    assert sorted(p.name for p in (tmp_path / "recon").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert Image.open(tmp_path / "recon" / "p0.png").size == (32, 32)
    grid = tmp_path / "grid.png"
    assert main(["eval", str(model), "--data", str(folder), "--num-tokens", "4", "16", "--grid", str(grid),
                 "--out", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())["models"]
    assert {row["tokens"] for row in report.values()} == {4, 16}
    assert all(np.isfinite(row["psnr"]) for row in report.values())
    assert Image.open(grid).size == (3 * 32, 3 * 32)  # originals + one row per token count
    assert main(["decode", str(model), str(tmp_path / "codes.npz"), "--out", str(tmp_path / "recon")]) == 2
