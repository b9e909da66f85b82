"""Checkpoint directories: save, load, resolve local-or-Hub, push, model cards.

Layout (the same for every family)::

    config.json        {"tokenizer": name, "tokzoo_version": ..., "training": {...}, **config}
    tokenizer.json     text families (Hugging Face tokenizers format)
    model.safetensors  neural families
    README.md          model card

Loading reads config.json, looks the class up in the registry (never an import path from
the file) and lets the family read its artifacts; nothing in a checkpoint is executed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from . import __version__, registry
from .config import RESERVED_KEYS, from_dict, to_dict

CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def save(tok, directory: str | Path) -> Path:
    """Write ``tok`` as a checkpoint dir; built in a temp dir beside it, then renamed."""
    if not tok.is_trained:
        raise ValueError(f"{tok.name} is not trained: call fit() or tokzoo.train() first")
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a checkpoint is an ordinary folder
    try:
        config = {"tokenizer": tok.name, "tokzoo_version": __version__, "training": tok.training,
                  **to_dict(tok.config)}
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        tok._save_artifacts(tmp)
        (tmp / CARD_NAME).write_text(model_card(tok), encoding="utf-8")
        _replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``, replacing an existing directory only once ``new`` is complete."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)


def resolve_dir(path_or_repo_id: str | Path, revision: str | None = None) -> Path:
    """A local checkpoint dir, or a Hub repo id fetched through huggingface_hub (cache first).

    With ``HF_HUB_OFFLINE=1`` a repo id resolves from the local Hugging Face cache only.
    """
    path = Path(path_or_repo_id)
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} is not a tokzoo checkpoint: no {CONFIG_NAME}")
        return path
    text = str(path_or_repo_id)
    if not _REPO_ID.match(text) or path.exists():
        raise FileNotFoundError(f"no checkpoint directory {text!r} (and it is not a Hub repo id)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=text, revision=revision))
    except LocalEntryNotFoundError:
        raise FileNotFoundError(
            f"no local directory {text!r}, and no Hub repo {text!r} in the local Hugging Face cache "
            "(the Hub cannot be reached)") from None
    except HfHubHTTPError as err:
        raise FileNotFoundError(f"Hub repo {text!r}: {err}") from None


def read_config(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{directory / CONFIG_NAME} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tokenizer"), str):
        raise ValueError(f"{directory / CONFIG_NAME}: missing the 'tokenizer' key")
    return data


def load(path_or_repo_id: str | Path, revision: str | None = None):
    """Load a checkpoint dir or Hub repo as the tokenizer class its config.json names."""
    directory = resolve_dir(path_or_repo_id, revision=revision)
    data = read_config(directory)
    cls = registry.get(data["tokenizer"])
    config = from_dict(cls.Config, {k: v for k, v in data.items() if k not in RESERVED_KEYS})
    tok = cls._load_artifacts(config, directory)
    tok.training = data.get("training") or {}
    return tok


def push(directory: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
         commit_message: str = "Upload tokzoo tokenizer") -> str:
    """Upload a checkpoint dir (validated by loading it first) to the Hub repo ``repo_id``."""
    directory = Path(directory)
    load(directory)  # refuse to publish something that does not load
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(directory), repo_id=repo_id, commit_message=commit_message)
    return str(getattr(info, "commit_url", info))


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def model_card(tok) -> str:
    """A Hub model card: what the tokenizer is, its data, its config and measured metrics."""
    import yaml

    training = tok.training or {}
    doc = (type(tok).__doc__ or "").strip().splitlines()
    summary = doc[0] if doc else f"A {tok.name} tokenizer."
    lines = [
        "---",
        "library_name: tokzoo",
        f"tags: [tokzoo, tokenizer, {tok.modality}, {tok.name}]",
        "---",
        "",
        f"# {tok.name} tokenizer ({tok.modality})",
        "",
        summary,
        "",
        "## Use",
        "",
        "```python",
        "import tokzoo",
        'tok = tokzoo.from_pretrained("<this repo id or directory>")',
        "```",
        "",
        "## Training data",
        "",
    ]
    data = training.get("data")
    if data:
        lines += [f"- `{d}`" for d in data]
        if "data_bytes" in training:
            lines.append(f"- {training['data_bytes']:,} bytes read")
    else:
        lines.append("Not recorded.")
    if "wall_time_s" in training:
        lines += ["", f"Training took {training['wall_time_s']:.1f} s."]
    lines += ["", "## Config", "", "```yaml", yaml.safe_dump({"tokenizer": tok.name, **to_dict(tok.config)},
                                                            sort_keys=False).rstrip(), "```", ""]
    metrics = training.get("metrics")
    lines += ["## Measured metrics", ""]
    if metrics:
        where = training.get("metrics_data", "the training data")
        lines += [f"Measured on {where}.", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_format_value(v)} |" for k, v in metrics.items()]
    else:
        lines.append("None measured.")
    lines += ["", f"Made with tokzoo {__version__}.", ""]
    return "\n".join(lines)
