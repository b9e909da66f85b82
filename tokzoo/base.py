"""The contract every tokenizer family fulfils.

A family subclasses :class:`Tokenizer`, sets ``modality`` and a ``Config`` dataclass,
and implements ``fit`` (train in place), ``_save_artifacts`` and ``_load_artifacts``
(its weights or tokenizer.json). Saving, loading, Hub upload and model cards are shared
and live in :mod:`tokzoo.hub`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence


class Tokenizer:
    name: ClassVar[str]  # set by @register
    modality: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: Any) -> None:
        self.config = config
        #: What training measured: data description, wall time, metrics. Goes to the card.
        self.training: dict[str, Any] = {}

    # -- training -------------------------------------------------------------------
    def fit(self, data: Sequence[str], *, progress: bool = True) -> None:
        """Train in place on ``data`` (paths or ``sample:NAME`` specs)."""
        raise NotImplementedError

    @property
    def is_trained(self) -> bool:
        raise NotImplementedError

    # -- persistence ------------------------------------------------------------------
    def _save_artifacts(self, directory: Path) -> None:
        """Write the family's files (tokenizer.json, model.safetensors...) into ``directory``."""
        raise NotImplementedError

    @classmethod
    def _load_artifacts(cls, config: Any, directory: Path) -> "Tokenizer":
        """Build a trained instance from ``config`` and the files in ``directory``."""
        raise NotImplementedError

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json, the artifacts and a model card; atomic (temp dir, then rename)."""
        from .hub import save

        return save(self, directory)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path, revision: str | None = None) -> "Tokenizer":
        from .hub import load

        tok = load(path_or_repo_id, revision=revision)
        if not isinstance(tok, cls):
            raise ValueError(f"{path_or_repo_id} holds a {type(tok).__name__}, not a {cls.__name__}")
        return tok

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    commit_message: str = "Upload tokzoo tokenizer") -> str:
        """Save to a temp dir and upload it as the Hub repo ``repo_id``; returns the commit URL."""
        import tempfile

        from .hub import push

        with tempfile.TemporaryDirectory() as tmp:
            path = self.save_pretrained(Path(tmp) / "checkpoint")
            return push(path, repo_id, private=private, token=token, commit_message=commit_message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
