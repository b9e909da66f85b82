"""tokzoo: trainable discrete tokenizers for text, images and audio."""
from __future__ import annotations

__version__ = "0.1.0"

from pathlib import Path
from typing import Any, Mapping, Sequence

from .registry import create, list_tokenizers, register


def train(name_or_config: str | Path | Mapping[str, Any], data: Sequence[str | Path] | str | Path,
          out: str | Path | None = None, *, progress: bool = True, **overrides: Any):
    """Train a tokenizer: registry name, YAML path or dict, plus config overrides (dotted keys).

    ``data`` is a list of paths (files, folders) or built-in ``sample:NAME`` specs. When
    ``out`` is given the trained tokenizer is saved there as a checkpoint dir, and a neural
    family keeps its run (logs, previews, resumable checkpoints) beside it in ``<out>.run``:
    running the same command again resumes it.
    """
    from .config import resolve

    cls, config = resolve(name_or_config, overrides)
    if isinstance(data, (str, Path)):
        data = [data]
    data = [str(d) for d in data]
    if not data:
        raise ValueError("no training data given")
    tok = cls(config)
    tok.fit(data, progress=progress, run_dir=None if out is None else f"{Path(out)}.run")
    if out is not None:
        tok.save_pretrained(out)
    return tok


def from_pretrained(path_or_repo_id: str | Path, revision: str | None = None):
    """Load a checkpoint from a local dir or a Hugging Face Hub repo id."""
    from .hub import load

    return load(path_or_repo_id, revision=revision)


__all__ = ["__version__", "create", "from_pretrained", "list_tokenizers", "register", "train"]
