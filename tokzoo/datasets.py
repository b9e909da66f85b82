"""Data sources: users' files and folders, built-in samples, and benchmark-set builders.

Text specs accepted everywhere (``tokzoo train --data``, ``tokzoo eval --data``):

- a file: ``.txt`` / any UTF-8 text (one document), ``.jsonl`` (a ``text`` field per
  line), ``.parquet`` (a ``text`` column); ``.gz`` variants of text and jsonl;
- a folder: every such file under it, recursively, in sorted order;
- ``sample:NAME`` or ``sample:NAME:SPLIT`` (split ``train`` or ``heldout``): a built-in
  sample that needs no download (see :data:`TEXT_SAMPLES`).

Unreadable files (binary, not UTF-8, corrupt JSON lines) are skipped and counted in a
:class:`ReadStats`, never fatal: one bad file must not end a long run.
"""
from __future__ import annotations

import ast
import gzip
import io
import json
import sysconfig
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".py", ".jsonl", ".parquet", ".text", ".gz")
#: Big files are yielded in pieces of about this many characters (split at line ends).
CHUNK_CHARS = 1 << 20


@dataclass
class ReadStats:
    """What a read saw: documents and bytes yielded, files skipped with the reason."""

    documents: int = 0
    bytes: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append((str(path), reason))


def _heldout(key: str, every: int = 10) -> bool:
    """Deterministic document-level split: about one key in ``every`` is held out."""
    return zlib.crc32(key.encode("utf-8")) % every == 0


def _stdlib_files() -> list[Path]:
    std = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3"}
    return sorted(p for p in std.rglob("*.py") if not skip.intersection(p.relative_to(std).parts))


def _python_docs(split: str) -> Iterator[str]:
    """Docstrings of the installed Python's standard library, plus pydoc's topic pages."""
    std = Path(sysconfig.get_paths()["stdlib"])
    for path in _stdlib_files():
        rel = str(path.relative_to(std))
        if _heldout(rel) != (split == "heldout"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        nodes = (n for n in ast.walk(tree)
                 if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))
        docs = [d for d in (ast.get_docstring(n) for n in nodes) if d]
        if docs:
            yield "\n\n".join(docs) + "\n"
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    for name in sorted(topics):
        if _heldout("topic:" + name) == (split == "heldout"):
            yield topics[name]


def _python_source(split: str) -> Iterator[str]:
    """The installed Python's standard-library sources (code, comments, docstrings)."""
    std = Path(sysconfig.get_paths()["stdlib"])
    for path in _stdlib_files():
        if _heldout(str(path.relative_to(std))) != (split == "heldout"):
            continue
        try:
            yield path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


#: Built-in text samples: name -> function(split) yielding documents. No download, no apt.
TEXT_SAMPLES: dict[str, Callable[[str], Iterator[str]]] = {
    "python-docs": _python_docs,
    "python-source": _python_source,
}


def _parse_sample(spec: str) -> tuple[str, str]:
    parts = spec.split(":")
    name = parts[1] if len(parts) > 1 else ""
    split = parts[2] if len(parts) > 2 else "train"
    if name not in TEXT_SAMPLES or split not in ("train", "heldout") or len(parts) > 3:
        known = ", ".join(f"sample:{n}[:train|:heldout]" for n in TEXT_SAMPLES)
        raise ValueError(f"unknown sample {spec!r} (known: {known})")
    return name, split


def _files_under(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [path]


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")


def _inner_suffix(path: Path) -> str:
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


def _read_jsonl(path: Path, text_field: str, stats: ReadStats) -> Iterator[str]:
    bad = 0
    with _open_text(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                value = json.loads(line)[text_field]
            except (json.JSONDecodeError, KeyError, TypeError):
                bad += 1
                continue
            if isinstance(value, str):
                yield value
            else:
                bad += 1
    if bad:
        stats.skip(path, f"{bad} line(s) without a string '{text_field}' field")


def _read_parquet(path: Path, text_field: str, stats: ReadStats) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError("reading .parquet needs pyarrow: pip install pyarrow") from None
    try:
        pf = pq.ParquetFile(path)
        if text_field not in pf.schema_arrow.names:
            stats.skip(path, f"no column '{text_field}'")
            return
        for batch in pf.iter_batches(columns=[text_field], batch_size=4096):
            yield from (v for v in batch.column(0).to_pylist() if isinstance(v, str))
    except (OSError, ValueError) as err:  # pyarrow raises ArrowInvalid (a ValueError) on corrupt files
        stats.skip(path, f"unreadable parquet: {err}")


def _read_plain(path: Path, stats: ReadStats) -> Iterator[str]:
    """A text file in pieces of about CHUNK_CHARS, split after a newline."""
    try:
        with _open_text(path) as f:
            head = f.read(CHUNK_CHARS)
            if "\x00" in head[:8192]:
                stats.skip(path, "binary (NUL bytes)")
                return
            buf = head
            while buf:
                more = f.read(CHUNK_CHARS)
                if more:
                    cut = buf.rfind("\n") + 1 or len(buf)
                    yield buf[:cut]
                    buf = buf[cut:] + more
                else:
                    yield buf
                    buf = ""
    except UnicodeDecodeError:
        stats.skip(path, "not UTF-8 text")
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        stats.skip(path, f"unreadable: {err}")


def read_texts(specs: Sequence[str | Path], *, text_field: str = "text",
               stats: ReadStats | None = None) -> Iterator[str]:
    """Yield the documents of every spec in order (see the module docstring for specs)."""
    stats = stats if stats is not None else ReadStats()
    for spec in specs:
        spec = str(spec)
        if spec.startswith("sample:"):
            name, split = _parse_sample(spec)
            docs: Iterable[str] = TEXT_SAMPLES[name](split)
            for doc in docs:
                stats.documents += 1
                stats.bytes += len(doc.encode("utf-8"))
                yield doc
            continue
        path = Path(spec)
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {spec}")
        for file in _files_under(path):
            suffix = _inner_suffix(file)
            if suffix == ".jsonl":
                docs = _read_jsonl(file, text_field, stats)
            elif suffix == ".parquet":
                docs = _read_parquet(file, text_field, stats)
            else:
                docs = _read_plain(file, stats)
            for doc in docs:
                stats.documents += 1
                stats.bytes += len(doc.encode("utf-8"))
                yield doc


def take_bytes(docs: Iterable[str], max_bytes: int | None) -> Iterator[str]:
    """Yield documents until about ``max_bytes`` UTF-8 bytes have been yielded."""
    total = 0
    for doc in docs:
        if max_bytes is not None and total >= max_bytes:
            return
        total += len(doc.encode("utf-8"))
        yield doc
