"""Registry, typed configs and checkpoint dirs (local and a real offline Hugging Face cache)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tokzoo
from tokzoo.config import ConfigError, apply_overrides, parse_override, resolve


def test_registry_lists_and_creates():
    assert {"bpe", "superbpe", "unigram"} <= set(tokzoo.list_tokenizers())
    assert set(tokzoo.list_tokenizers(modality="text")) >= {"bpe", "superbpe", "unigram"}
    assert tokzoo.list_tokenizers(modality="audio") == [t for t in tokzoo.list_tokenizers()
                                                        if tokzoo.registry.get(t).modality == "audio"]
    tok = tokzoo.create("superbpe", vocab_size=32000, transition=24000)
    assert tok.modality == "text" and tok.config.transition == 24000 and not tok.is_trained
    with pytest.raises(ValueError, match="unknown tokenizer 'nope'"):
        tokzoo.create("nope")
    with pytest.raises(ValueError, match="modality"):
        tokzoo.list_tokenizers(modality="video")


def test_register_rejects_duplicates_and_bad_modality():
    from tokzoo.registry import register

    class Thing:
        modality = "smell"

    with pytest.raises(ValueError, match="modality"):
        register("thing")(Thing)
    with pytest.raises(ValueError, match="registered twice"):
        register("bpe")(type("OtherBPE", (), {"modality": "text"}))


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'vocab_sise'"):
        tokzoo.create("bpe", vocab_sise=1000)
    with pytest.raises(ConfigError, match="'vocab_size': expected an integer"):
        tokzoo.create("bpe", vocab_size="big")
    with pytest.raises(ConfigError, match="'vocab_size': must exceed"):
        tokzoo.create("bpe", vocab_size=10)
    with pytest.raises(ConfigError, match="'special_tokens\\[1\\]': expected a string"):
        tokzoo.create("bpe", special_tokens=["<a>", 3])
    with pytest.raises(ConfigError, match="'pretokenizer': must be one of"):
        tokzoo.create("bpe", pretokenizer="gpt5")
    with pytest.raises(ConfigError, match="'model_type': must be one of"):
        tokzoo.create("unigram", model_type="wordpiece")
    with pytest.raises(ConfigError, match="'min_frequency': expected an integer"):
        tokzoo.create("bpe", min_frequency=True)


def test_yaml_configs_and_dotted_overrides(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("tokenizer: superbpe\nvocab_size: 5000\ntransition: 4000\n")
    cls, cfg = resolve(str(path), {"max_words": 3})
    assert cls.name == "superbpe" and (cfg.vocab_size, cfg.transition, cfg.max_words) == (5000, 4000, 3)
    (tmp_path / "bad.yaml").write_text("vocab_size: 5000\n")
    with pytest.raises(ConfigError, match="missing the 'tokenizer' key"):
        resolve(str(tmp_path / "bad.yaml"))
    (tmp_path / "broken.yaml").write_text("tokenizer: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(str(tmp_path / "broken.yaml"))
    assert parse_override("model.depth=12") == ("model.depth", 12)
    assert parse_override("name=titok") == ("name", "titok")
    assert parse_override("tokens=[1, 2]") == ("tokens", [1, 2])
    nested = apply_overrides({"model": {"depth": 2, "width": 8}}, {"model.depth": 12, "train.lr": 0.1})
    assert nested == {"model": {"depth": 12, "width": 8}, "train": {"lr": 0.1}}
    with pytest.raises(ConfigError, match="'model' is not a section"):
        apply_overrides({"model": 3}, {"model.depth": 1})


def test_shipped_recipes_resolve():
    root = Path(__file__).resolve().parents[1] / "configs"
    recipes = sorted(root.rglob("*.yaml"))
    assert recipes, "configs/ should hold the named recipes"
    for recipe in recipes:
        cls, cfg = resolve(str(recipe))
        assert cls.modality == recipe.parent.name


def test_save_load_round_trip_and_strictness(trained, tmp_path):
    tok, path = trained["superbpe"]
    loaded = tokzoo.from_pretrained(path)
    assert type(loaded) is type(tok) and loaded.config == tok.config
    assert loaded.training["metrics"] == tok.training["metrics"]
    text = "Return the value of the named attribute of object."
    assert loaded.encode(text) == tok.encode(text)
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "config.json", "tokenizer.json",
                                                      "tokenizer_config.json"]
    # a config.json with an unknown key, or a class name that is not registered, is refused
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "surprise": 1}))
    with pytest.raises(ConfigError, match="surprise"):
        tokzoo.from_pretrained(broken)
    (broken / "config.json").write_text(json.dumps({**config, "tokenizer": "os.system"}))
    with pytest.raises(ValueError, match="unknown tokenizer 'os.system'"):
        tokzoo.from_pretrained(broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        tokzoo.from_pretrained(broken)
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        tokzoo.from_pretrained(tmp_path / "missing")


def test_save_replaces_atomically(trained, tmp_path):
    tok, _ = trained["bpe"]
    target = tmp_path / "ckpt"
    tok.save_pretrained(target)
    (target / "stale.txt").write_text("from an older save")
    tok.save_pretrained(target)
    assert not (target / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"], "no temp dirs left behind"
    untrained = tokzoo.create("bpe")
    with pytest.raises(ValueError, match="not trained"):
        untrained.save_pretrained(tmp_path / "never")
    assert not (tmp_path / "never").exists()


def _fill_hf_cache(cache: Path, repo_id: str, checkpoint: Path, commit: str = "0123456789abcdef" * 2 + "01234567"):
    """Lay a checkpoint out as huggingface_hub caches a downloaded repo (blobs + symlinks)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    import hashlib

    for file in checkpoint.iterdir():
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    return snapshot


def test_hub_repo_id_loads_offline_from_a_real_cache(trained, tmp_path):
    tok, path = trained["bpe"]
    cache = tmp_path / "hf-cache"
    _fill_hf_cache(cache, "tokzoo-test/bpe-2k", path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home")}
    text = "Hub loading works offline."
    code = ("import tokzoo, json; t = tokzoo.from_pretrained('tokzoo-test/bpe-2k'); "
            f"print(json.dumps([t.name, t.encode({text!r})]))")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["bpe", tok.encode(text)]
    code = "import tokzoo; tokzoo.from_pretrained('tokzoo-test/not-cached')"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "not-cached" in run.stderr and "local Hugging Face cache" in run.stderr
