"""Data sources: users' files and folders, built-in samples, and benchmark-set builders.

Text specs accepted everywhere (``tokzoo train --data``, ``tokzoo eval --data``):

- a file: ``.txt`` / any UTF-8 text (one document), ``.jsonl`` (a ``text`` field per
  line), ``.parquet`` (a ``text`` column); ``.gz`` variants of text and jsonl;
- a folder: every such file under it, recursively, in sorted order;
- ``sample:NAME`` or ``sample:NAME:SPLIT`` (split ``train`` or ``heldout``): a built-in
  sample that needs no download (see :data:`TEXT_SAMPLES`).

Unreadable files (binary, not UTF-8, corrupt .gz) and bad JSON lines are skipped and
counted in a :class:`ReadStats`, never fatal: one bad file must not end a long run.

Image specs (:func:`image_files`; pixels are read by ``tokzoo.training.data``): image
files, folders of them, uncompressed ``.tar`` shards, ``sample:skimage`` and
``sample:sklearn`` (pictures shipped inside those wheels), with the same split suffix.

Benchmark sets are built once into a cache (``$TOKZOO_CACHE``, else
``~/.cache/tokzoo/datasets``) and then read as plain folders:
:func:`build_text_bench` (English prose, train/heldout), :func:`build_parallel_text`
(the same messages in 40 languages) and :func:`build_image_bench` (photos and emoji,
train/heldout). ``python -m tokzoo.datasets text-bench|parallel|image-bench`` builds one
and prints its path.
"""
from __future__ import annotations

import ast
import codecs
import collections
import gzip
import importlib.util
import io
import json
import os
import shutil
import struct
import subprocess
import sysconfig
import tempfile
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

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


def _parse_sample(spec: str, samples: dict = TEXT_SAMPLES) -> tuple[str, str]:
    parts = spec.split(":")
    name = parts[1] if len(parts) > 1 else ""
    split = parts[2] if len(parts) > 2 else "train"
    if name not in samples or split not in ("train", "heldout") or len(parts) > 3:
        known = ", ".join(f"sample:{n}[:train|:heldout]" for n in samples)
        raise ValueError(f"unknown sample {spec!r} (known: {known})")
    return name, split


def _files_under(path: Path) -> list[Path]:
    """``path`` itself, or every file under it, minus hidden files and hidden folders
    (a dataset folder that is a git checkout must not yield ``.git/``'s contents)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file()
                      and not any(part.startswith(".") for part in p.relative_to(path).parts))
    return [path]


#: What a truncated or corrupt file (plain or .gz) raises while being read.
_UNREADABLE = (OSError, EOFError, zlib.error)


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")


def _inner_suffix(path: Path) -> str:
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


def _read_jsonl(path: Path, text_field: str, stats: ReadStats) -> Iterator[str]:
    """One document per line; a bad line (not JSON, not UTF-8, no text) is counted and
    skipped, so one bad line does not cost the rest of a large file."""
    bad = 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    value = json.loads(line.decode("utf-8"))[text_field]
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, IndexError):
                    bad += 1
                    continue
                if isinstance(value, str):
                    yield value
                else:
                    bad += 1
    except _UNREADABLE as err:
        stats.skip(path, f"unreadable: {err}")
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
    except _UNREADABLE as err:
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


def batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of up to ``size`` consecutive items (the last one may be shorter)."""
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def take_bytes(docs: Iterable[str], max_bytes: int | None) -> Iterator[str]:
    """Yield documents until about ``max_bytes`` UTF-8 bytes have been yielded."""
    total = 0
    for doc in docs:
        if max_bytes is not None and total >= max_bytes:
            return
        total += len(doc.encode("utf-8"))
        yield doc


# --------------------------------------------------------------------------------------
# Images: which files a spec names, built-in samples and the held-out split. Decoding
# pixels needs torch and lives in tokzoo.training.data; this part stays light.

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
#: Share of a built-in image sample that is held out (they are small: 26 and 2 pictures).
IMAGE_SAMPLE_HELDOUT_SHARE = 0.1


def _package_dir(module: str, pip_name: str) -> Path:
    """An installed package's folder, found without importing it (sklearn takes a second)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"this sample needs {pip_name}: pip install {pip_name}")
    return Path(spec.submodule_search_locations[0])


#: Built-in image samples: name -> the folder of pictures that its package ships. For
#: scikit-image only the pictures inside its wheel count (astronaut, coffee, chelsea...):
#: its other ``skimage.data`` images download through pooch at first use.
IMAGE_SAMPLES: dict[str, Callable[[], Path]] = {
    "skimage": lambda: _package_dir("skimage", "scikit-image") / "data",
    "sklearn": lambda: _package_dir("sklearn", "scikit-learn") / "datasets" / "images",
}


def _is_image_source(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES + (".tar",)


def split_files(files: Iterable[str | Path], heldout_share: float = 0.05,
                seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Deterministic ``(train, heldout)`` split of image files (or shards), sorted.

    A file's side depends only on ``seed`` and its path below the files' common folder,
    so moving the dataset or adding files never moves a file across the split; the
    share is rounded to one file in n. If two or more files leave the held-out side
    empty, the last one is held out anyway: tiny folders need a held-out set more than
    an exact share.
    """
    if not 0 < heldout_share < 1:
        raise ValueError(f"heldout_share must be in (0, 1), got {heldout_share}")
    files = sorted(Path(f) for f in files)
    if not files:
        return [], []
    absolute = [Path(os.path.abspath(f)) for f in files]
    root = os.path.commonpath([str(a.parent) for a in absolute])
    every = max(2, round(1 / heldout_share))
    held = [_heldout(f"{seed}:{a.relative_to(root).as_posix()}", every) for a in absolute]
    if len(files) > 1 and not any(held):
        held[-1] = True
    return ([f for f, h in zip(files, held) if not h], [f for f, h in zip(files, held) if h])


def image_files(specs: Sequence[str | Path]) -> list[Path]:
    """The image files and ``.tar`` shards that ``specs`` name, in order.

    A folder gives every image (``IMAGE_SUFFIXES``, any case) or shard under it,
    recursively, hidden entries skipped; a file is taken as it is (a non-image is
    counted as skipped when it is read); ``sample:NAME[:SPLIT]`` gives a split of a
    built-in sample (:data:`IMAGE_SAMPLES`).
    """
    out: list[Path] = []
    for spec in map(str, specs):
        if spec.startswith("sample:"):
            name, split = _parse_sample(spec, IMAGE_SAMPLES)
            pictures = [p for p in _files_under(IMAGE_SAMPLES[name]()) if _is_image_source(p)]
            train, heldout = split_files(pictures, IMAGE_SAMPLE_HELDOUT_SHARE)
            out += heldout if split == "heldout" else train
            continue
        path = Path(spec)
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {spec}")
        out += [p for p in _files_under(path) if not path.is_dir() or _is_image_source(p)]
    return out


# --------------------------------------------------------------------------------------
# Benchmark-set builders. They unpack Debian packages or read files already on the
# machine, write plain .txt files into a cache folder and return that folder; nothing
# downloads at training or eval time.

def cache_root(path: str | Path | None = None) -> Path:
    """Where built benchmark sets live: ``path``, else ``$TOKZOO_CACHE``, else
    ``~/.cache/tokzoo/datasets``."""
    return Path(path or os.environ.get("TOKZOO_CACHE") or "~/.cache/tokzoo/datasets").expanduser()


def _build_once(final: Path, build: Callable[[Path], dict]) -> Path:
    """Run ``build(tmp)`` into a temp folder, write its meta.json, then rename it to
    ``final``: an interrupted build leaves nothing that looks finished, a finished one
    is never redone."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        meta = build(tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        try:
            tmp.rename(final)
        except OSError:  # another process finished first
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _apt_unpack(package: str, dest: Path) -> Path:
    """``apt-get download`` one package (no root, no install) and ``dpkg -x`` it."""
    missing = [tool for tool in ("apt-get", "dpkg") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"building this set needs {' and '.join(missing)} (Debian/Ubuntu) "
                           f"to fetch the package {package}; use your own --data files instead")
    debs = dest / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    root = dest / package
    for cmd in (["apt-get", "download", package], None):
        if cmd is None:
            found = sorted(debs.glob(f"{package}_*.deb"))
            if not found:
                raise RuntimeError(f"apt-get download {package} produced no .deb")
            cmd = ["dpkg", "-x", str(found[-1]), str(root)]
        done = subprocess.run(cmd, cwd=debs, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise RuntimeError(f"{' '.join(cmd[:2])} {package} failed: {tail[0]}")
    return root


class _SphinxText(HTMLParser):
    """Plain text of a Sphinx page's main body: navigation, scripts, styles and the
    pilcrow permalinks are dropped; ``<pre>`` keeps its layout, other text is reflowed."""

    BLOCKS = {"p", "div", "section", "pre", "li", "dt", "dd", "tr", "table", "blockquote",
              "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "br", "hr", "figcaption"}
    VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "col", "area", "source"}
    SKIP = {"script", "style", "nav"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.main_divs = 0  # open <div>s from the role="main" one inwards; 0: outside
        self.skipping = 0   # open elements inside a dropped one
        self.in_pre = False
        self.line: list[str] = []
        self.blocks: list[str] = []

    def _flush(self) -> None:
        text = "".join(self.line)
        text = text.rstrip() if self.in_pre else " ".join(text.split())
        if text.strip():
            self.blocks.append(text)
        self.line = []

    def handle_starttag(self, tag, attrs):
        if not self.main_divs:
            self.main_divs = int(tag == "div" and ("role", "main") in attrs)
        elif tag in self.VOID:
            self.handle_startendtag(tag, attrs)
        elif self.skipping or tag in self.SKIP or "headerlink" in (dict(attrs).get("class") or ""):
            self.skipping += 1
        else:
            self.main_divs += tag == "div"
            if tag in self.BLOCKS:
                self._flush()
                self.in_pre = tag == "pre"

    def handle_endtag(self, tag):
        if not self.main_divs or tag in self.VOID:
            return
        if self.skipping:
            self.skipping -= 1
            return
        if tag in self.BLOCKS:
            self._flush()
            self.in_pre = False
        self.main_divs -= tag == "div"

    def handle_startendtag(self, tag, attrs):
        if self.main_divs and not self.skipping and tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data):
        if self.main_divs and not self.skipping:
            self.line.append(data)

    @classmethod
    def text(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        parser.close()
        parser._flush()
        return "\n\n".join(parser.blocks) + "\n" if parser.blocks else ""


def _python_doc_pages(root: Path) -> Iterator[tuple[str, str]]:
    """(key, text) per page of the python3.11-doc HTML manual, minus index/TOC pages."""
    html = root / "usr/share/doc/python3.11/html"
    skip = ("genindex", "py-modindex", "search", "contents", "download")
    for path in sorted(html.rglob("*.html")):
        rel = path.relative_to(html).as_posix()
        if rel.startswith("_") or path.stem.startswith(skip):
            continue
        text = _SphinxText.text(path.read_text(encoding="utf-8"))
        if text:
            yield "python-doc/" + rel[: -len(".html")], text


def _kjv_chapters(bible_root: Path, text_root: Path) -> Iterator[tuple[str, str]]:
    """(key, text) per chapter of the King James Bible, one verse per line.

    bible-kjv-text stores the text compressed; the ``bible`` program from bible-kjv is
    the only reader, so it is run once to dump every verse (``-f``: one per line)."""
    done = subprocess.run([str(bible_root / "usr/bin/bible"), "-f", "-p", str(text_root / "usr/lib"),
                           "Gen1:1-Rev22:21"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, check=True)
    chapters: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        ref, _, verse = line.partition(" ")
        book_chapter = ref.rsplit(":", 1)[0]  # "1Sm12:3" -> "1Sm12"
        chapters.setdefault(book_chapter, []).append(verse)
    if len(chapters) < 1000:  # 1189 chapters in the KJV
        raise RuntimeError(f"bible dumped only {len(chapters)} chapters; is bible-kjv-text intact?")
    for name, verses in chapters.items():
        yield "kjv/" + name, "\n".join(verses) + "\n"


def build_text_bench(cache_dir: str | Path | None = None) -> Path:
    """English prose for tokenizer benchmarks: the Python 3.11 manual (HTML -> text, one
    document per page) and the King James Bible (one document per chapter), from Debian.

    Writes ``text-bench/train/*.txt`` and ``text-bench/heldout/*.txt``, split by
    document (about 10% held out, deterministic), and returns the ``text-bench`` folder.
    Two registers of English (technical, archaic) keep one domain from flattering a
    tokenizer trained on the other.
    """
    def build(tmp: Path) -> dict:
        work = tmp / ".work"
        doc = _apt_unpack("python3.11-doc", work)
        bible, bible_text = _apt_unpack("bible-kjv", work), _apt_unpack("bible-kjv-text", work)
        meta: dict = {"sources": ["python3.11-doc", "bible-kjv", "bible-kjv-text"]}
        for source, docs in (("python-doc", _python_doc_pages(doc)),
                             ("kjv", _kjv_chapters(bible, bible_text))):
            for key, text in docs:
                split = "heldout" if _heldout(key) else "train"
                out = tmp / split / (key.replace("/", "-") + ".txt")
                out.parent.mkdir(exist_ok=True)
                out.write_text(text, encoding="utf-8")
                entry = meta.setdefault(f"{source}/{split}", {"documents": 0, "bytes": 0})
                entry["documents"] += 1
                entry["bytes"] += len(text.encode("utf-8"))
        shutil.rmtree(work)
        return meta

    return _build_once(cache_root(cache_dir) / "text-bench", build)


def _read_mo(path: Path) -> tuple[list[bytes], list[bytes], str]:
    """The raw msgids, msgstrs and charset of one compiled gettext catalogue (GNU .mo).

    Left undecoded: most of the 1.8M entries on a desktop install are dropped before
    decoding (translated in too few languages), and old catalogues are not all UTF-8.
    """
    data = path.read_bytes()
    order = {b"\xde\x12\x04\x95": "<", b"\x95\x04\x12\xde": ">"}.get(data[:4])
    if order is None:
        raise ValueError("not a .mo file")
    count, orig_at, trans_at = struct.unpack(order + "3I", data[8:20])

    def table(at: int) -> list[bytes]:  # (length, offset) pairs -> the strings
        pairs = np.frombuffer(data, dtype=order + "u4", count=2 * count, offset=at).reshape(-1, 2)
        return [data[o: o + n] for n, o in pairs.tolist()]

    msgids, msgstrs = table(orig_at), table(trans_at)
    charset = "utf-8"
    if msgids and msgids[0] == b"":  # the header entry sorts first
        for line in msgstrs[0].decode("ascii", "replace").splitlines():
            if line.lower().startswith("content-type:") and "charset=" in line:
                charset = line.split("charset=", 1)[1].strip() or charset
    if charset.upper() == "CHARSET":  # the unfilled template value: xgettext writes ASCII
        charset = "utf-8"
    return msgids, msgstrs, codecs.lookup(charset).name  # LookupError if unknown


def _one_line(message: str) -> str:
    """A message on one line: every line break (anything ``str.splitlines`` splits on)
    and the indentation around it become one space, so line i matches across files."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def build_parallel_text(cache_dir: str | Path | None = None, min_languages: int = 40,
                        locale_dir: str | Path = "/usr/share/locale") -> Path:
    """The same messages in many languages, from the gettext catalogues on this machine
    (coreutils, bash, glib, iso-codes, ...), for per-language parity (token premium).

    Writes ``parallel/<lang>.txt``: line i of every file is the same message; ``en.txt``
    holds the msgids themselves. A translation identical to the English counts as
    missing (translators often copy untranslated strings). Only messages translated in
    every kept language are written. Choosing the languages that share the most messages
    is a maximum-biclique problem; a greedy elimination picks ``min_languages`` of them
    (any other language that covers the same messages is kept too).
    """
    def build(tmp: Path) -> dict:
        raw: dict[str, list[tuple[list[bytes], list[bytes], str]]] = {}
        unreadable = []
        for mo in sorted(Path(locale_dir).glob("*/LC_MESSAGES/*.mo")):
            lang = mo.parent.parent.name
            if mo.is_symlink() or lang == "en" or lang.startswith(("en_", "en@")):
                continue  # iso-codes links its catalogues under several names
            try:
                raw.setdefault(lang, []).append(_read_mo(mo))
            except (ValueError, struct.error, LookupError):
                unreadable.append(str(mo))
        # A message can only be kept if at least min_languages translate it: decode those.
        n_langs = collections.Counter(k for cats in raw.values() for k in set().union(*(c[0] for c in cats)))
        # Plural entries (b"\0") and entries with a context (b"\4": the English alone is
        # ambiguous, e.g. "Open" the verb or the adjective) are no clean parallel text.
        common = {k for k, n in n_langs.items()
                  if n >= min_languages and k and b"\x00" not in k and b"\x04" not in k}
        catalogs: dict[str, dict[str, str]] = {}
        for lang, cats in raw.items():
            catalog = catalogs.setdefault(lang, {})
            for msgids, msgstrs, charset in cats:
                for msgid, msgstr in zip(msgids, msgstrs):
                    if msgid not in common or not msgstr:
                        continue
                    try:
                        text = _one_line(msgstr.decode(charset))
                        english = _one_line(msgid.decode("utf-8"))
                    except UnicodeDecodeError:
                        continue
                    if text and text != english and any(c.isalpha() for c in english):
                        catalog.setdefault(english, text)  # first domain (sorted) wins
        langs = sorted(catalogs)
        if len(langs) < min_languages:
            raise RuntimeError(f"only {len(langs)} languages have gettext catalogues under "
                               f"{locale_dir}; need {min_languages}")
        messages = sorted(set().union(*(catalogs[lang] for lang in langs)))
        row = {m: i for i, m in enumerate(messages)}
        have = np.zeros((len(messages), len(langs)), dtype=bool)
        for j, lang in enumerate(langs):
            have[[row[m] for m in catalogs[lang]], j] = True
        # Drop languages one at a time until min_languages are left. A message is still
        # reachable if it misses no more languages than are left to drop; drop the
        # language missing from the most reachable messages.
        keep = np.ones(len(langs), dtype=bool)
        while keep.sum() > min_languages:
            missing = ~have[:, keep]
            reachable = missing.sum(axis=1) <= keep.sum() - min_languages
            keep[np.flatnonzero(keep)[int(np.argmax(missing[reachable].sum(axis=0)))]] = False
        complete = have[:, keep].all(axis=1)
        keep |= have[complete].all(axis=0)  # languages that happen to cover them all too
        rows = np.flatnonzero(have[:, keep].all(axis=1))
        chosen = [lang for lang, k in zip(langs, keep) if k]
        lines = [messages[i] for i in rows]
        if not lines:
            raise RuntimeError(f"no message is translated in {min_languages} languages under {locale_dir}")
        (tmp / "en.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for lang in chosen:
            (tmp / f"{lang}.txt").write_text("\n".join(catalogs[lang][m] for m in lines) + "\n",
                                             encoding="utf-8")
        return {"source": str(locale_dir), "languages": ["en"] + chosen, "messages": len(lines),
                "candidate_languages": len(langs), "unreadable_catalogues": unreadable}

    return _build_once(cache_root(cache_dir) / "parallel", build)


def _cmap_codepoints(font: Path) -> list[int]:
    """Every code point a TrueType font maps, from its format-12 cmap subtable (the one
    that reaches past U+FFFF, where most emoji are)."""
    data = font.read_bytes()
    (num_tables,) = struct.unpack_from(">H", data, 4)
    tables = {data[12 + 16 * i: 16 + 16 * i]: struct.unpack_from(">I", data, 20 + 16 * i)[0]
              for i in range(num_tables)}
    cmap = tables[b"cmap"]
    (num_subtables,) = struct.unpack_from(">H", data, cmap + 2)
    for i in range(num_subtables):
        (offset,) = struct.unpack_from(">I", data, cmap + 8 + 8 * i)
        sub = cmap + offset
        if struct.unpack_from(">H", data, sub)[0] == 12:
            (groups,) = struct.unpack_from(">I", data, sub + 12)
            spans = np.frombuffer(data, dtype=">u4", count=3 * groups, offset=sub + 16).reshape(-1, 3)
            return sorted({c for start, end, _ in spans.tolist() for c in range(start, end + 1)})
    raise ValueError(f"{font} has no format-12 cmap")


def _render_emoji(font_path: Path, limit: int) -> Iterator[tuple[str, bytes]]:
    """(file name, PNG bytes) for up to ``limit`` emoji of Noto Color Emoji, evenly spread
    over its code points: each one's colour bitmap (size 109 selects the 136x128 strike)
    on a white square. Code points without a picture (ASCII, joiners, tags) are left out."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), 109)
    pictures = []
    for cp in _cmap_codepoints(font_path):
        if cp < 0xA9:
            continue  # digits, '#', '*' and space: plain glyphs, not pictures
        x0, y0, x1, y1 = font.getbbox(chr(cp))
        side = max(x1 - x0, y1 - y0)
        if min(x1 - x0, y1 - y0) <= 0:
            continue
        image = Image.new("RGB", (side, side), "white")
        ImageDraw.Draw(image).text((-x0 + (side - x1 + x0) // 2, -y0 + (side - y1 + y0) // 2),
                                   chr(cp), font=font, embedded_color=True)
        if np.asarray(image).min() < 240:  # something was drawn
            pictures.append((cp, image))
    step = max(1, len(pictures) / limit)
    for cp, image in (pictures[int(i * step)] for i in range(min(limit, len(pictures)))):
        out = io.BytesIO()
        image.save(out, "PNG")
        yield f"u{cp:05x}.png", out.getvalue()


def _opencv_photos(examples: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes as shipped) of the pictures among OpenCV's sample data: photos,
    stereo and calibration shots, optical-flow frame pairs, scene text. Masks (bilevel or
    named so), images under 64 px and byte-identical copies are left out."""
    from PIL import Image

    seen = set()
    for path in sorted(examples.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or "mask" in path.name.lower():
            continue
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            if image.mode == "1" or min(image.size) < 64 or data in seen:
                continue
        seen.add(data)
        yield path.relative_to(examples).as_posix().replace("/", "-"), data


def build_image_bench(cache_dir: str | Path | None = None, max_emoji: int = 1000) -> Path:
    """Pictures for image-tokenizer benchmarks, from Debian: photos from OpenCV's sample
    data (opencv-doc) and emoji bitmaps (fonts-noto-color-emoji): natural images beside
    flat graphics with hard edges, which stress a tokenizer differently.

    Writes ``image-bench/{train,heldout}/{photos,emoji}/`` (photos as shipped, JPEG or
    PNG; emoji as PNG), split by file (about 10% held out, deterministic), and returns
    the ``image-bench`` folder. OpenCV's sample videos (XviD, DivX, Cinepak AVI) are left
    out: nothing installed decodes them (Pillow reads no video, there is no ffmpeg).
    The set is built once: a later call returns it whatever its ``max_emoji``.
    """
    def build(tmp: Path) -> dict:
        work = tmp / ".work"
        docs = _apt_unpack("opencv-doc", work) / "usr/share/doc/opencv-doc/examples"
        font = _apt_unpack("fonts-noto-color-emoji", work) / "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
        everything = work / "all"
        for kind, pictures in (("photos", _opencv_photos(docs)), ("emoji", _render_emoji(font, max_emoji))):
            (everything / kind).mkdir(parents=True)
            for name, data in pictures:
                (everything / kind / name).write_bytes(data)
        meta: dict = {"sources": ["opencv-doc", "fonts-noto-color-emoji"],
                      "left_out": sorted(p.name for p in docs.rglob("*.avi"))}
        train, heldout = split_files(_files_under(everything), heldout_share=0.1)
        for split, files in (("train", train), ("heldout", heldout)):
            for file in files:
                kind = file.parent.name
                (tmp / split / kind).mkdir(parents=True, exist_ok=True)
                entry = meta.setdefault(f"{kind}/{split}", {"files": 0, "bytes": 0})
                entry["files"] += 1
                entry["bytes"] += file.stat().st_size
                file.rename(tmp / split / kind / file.name)
        shutil.rmtree(work)
        return meta

    return _build_once(cache_root(cache_dir) / "image-bench", build)


if __name__ == "__main__":
    import sys

    builders = {"text-bench": build_text_bench, "parallel": build_parallel_text,
                "image-bench": build_image_bench}
    if len(sys.argv) != 2 or sys.argv[1] not in builders:
        sys.exit(f"usage: python -m tokzoo.datasets {'|'.join(builders)}")
    print(builders[sys.argv[1]]())
