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
    def fit(self, data: Sequence[str], *, progress: bool = True, run_dir: str | Path | None = None) -> None:
        """Train in place on ``data`` (paths or ``sample:NAME`` specs).

        Neural families keep their training run (logs, resumable checkpoints) in ``run_dir``.
        """
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


#: State-dict prefixes a neural tokenizer does not publish: the discriminator only serves
#: training, and the perceptual network is a frozen copy of published weights.
NOT_EXPORTED = ("discriminator.", "perceptual.")
WEIGHTS_NAME = "model.safetensors"


class NeuralTokenizer(Tokenizer):
    """A tokenizer that is a trained ``nn.Module``; its weights live in model.safetensors.

    A family implements ``build_model(perceptual)``: the model from ``self.config``, with
    the perceptual network only when training (inference never needs it).
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.model = self.build_model(perceptual=None)
        self.model.eval()
        self._trained = False

    def build_model(self, perceptual=None):
        raise NotImplementedError

    @property
    def is_trained(self) -> bool:
        return self._trained

    def exported_state(self) -> dict:
        return {k: v for k, v in self.model.state_dict().items() if not k.startswith(NOT_EXPORTED)}

    def _save_artifacts(self, directory: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous().cpu() for k, v in self.exported_state().items()},
                  str(directory / WEIGHTS_NAME), metadata={"format": "pt", "tokenizer": self.name})

    @classmethod
    def _load_artifacts(cls, config: Any, directory: Path) -> "NeuralTokenizer":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = directory / WEIGHTS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{directory} has no {WEIGHTS_NAME}")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{path} is not a valid safetensors file: {err}") from None
        tok = cls(config)
        tok.load_weights(state, source=str(path))
        return tok

    def load_weights(self, state: dict, source: str = "weights") -> None:
        """Load exported weights strictly: a missing, extra or misshapen tensor is an error."""
        expected = self.exported_state()
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or extra:
            raise ValueError(f"{source} does not match the config: missing {missing[:5]}, unexpected {extra[:5]}")
        bad = [k for k, v in state.items() if v.shape != expected[k].shape]
        if bad:
            raise ValueError(f"{source}: shape mismatch for {bad[0]}: {tuple(state[bad[0]].shape)} "
                             f"vs {tuple(expected[bad[0]].shape)} in the config")
        self.model.load_state_dict(state, strict=False)
        self.model.eval()
        self._trained = True
