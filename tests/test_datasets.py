import gettext
import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tokzoo.datasets as ds
from tokzoo.datasets import ReadStats, read_texts, take_bytes


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_read_texts_formats_and_skips(tmp_path):
    _write(tmp_path / "a.txt", "héllo\nworld\n".encode())
    _write(tmp_path / "b.jsonl", b'{"text": "one"}\nnot json\n{"text": 5}\n\n{"other": "x"}\n{"text": "two"}\n')
    _write(tmp_path / "c.jsonl.gz", gzip.compress(b'{"text": "three"}\n'))
    _write(tmp_path / "d.txt.gz", b"\x1f\x8b\x08\x00corrupt")
    _write(tmp_path / "e.jsonl.gz", b"\x1f\x8b\x08\x00corrupt")
    _write(tmp_path / "f.bin", b"\x00\x01\x02binary")
    _write(tmp_path / "g.txt", b"caf\xe9 latin-1")
    _write(tmp_path / "h.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n[1]\n')
    pq.write_table(pa.table({"text": ["p1", None, "p2"]}), tmp_path / "i.parquet")
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "j.parquet")
    _write(tmp_path / ".git" / "config", b"[core]\n")
    _write(tmp_path / ".hidden.txt", b"secret\n")

    stats = ReadStats()
    docs = list(read_texts([tmp_path], stats=stats))
    assert docs == ["héllo\nworld\n", "one", "two", "three", "ok", "p1", "p2"]
    assert stats.documents == 7
    assert stats.bytes == sum(len(d.encode()) for d in docs)
    reasons = {Path(p).name: why for p, why in stats.skipped}
    assert reasons["b.jsonl"] == "3 line(s) without a string 'text' field"
    assert reasons["d.txt.gz"].startswith("unreadable")
    assert reasons["e.jsonl.gz"].startswith("unreadable")
    assert reasons["f.bin"] == "binary (NUL bytes)"
    assert reasons["g.txt"] == "not UTF-8 text"
    assert reasons["h.jsonl"] == "2 line(s) without a string 'text' field"
    assert reasons["j.parquet"] == "no column 'text'"
    assert len(stats.skipped) == 7


def test_read_texts_truncated_gzip_is_skipped(tmp_path):
    whole = gzip.compress(b"line\n" * 50_000)
    path = _write(tmp_path / "t.txt.gz", whole[: len(whole) // 2])
    stats = ReadStats()
    list(read_texts([path], stats=stats))
    assert [Path(p).name for p, _ in stats.skipped] == ["t.txt.gz"]


def test_big_file_comes_in_line_aligned_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "CHUNK_CHARS", 64)
    text = "".join(f"line {i}\n" for i in range(100))
    pieces = list(read_texts([_write(tmp_path / "big.txt", text.encode())]))
    assert len(pieces) > 5 and "".join(pieces) == text
    assert all(p.endswith("\n") for p in pieces)


def test_read_texts_bad_specs(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(read_texts([tmp_path / "nope.txt"]))
    with pytest.raises(ValueError, match="unknown sample"):
        list(read_texts(["sample:python-docs:test"]))
    assert list(take_bytes(["aaaa", "bb", "c"], 5)) == ["aaaa", "bb"]


def test_sample_python_docs_splits_are_disjoint():
    train = list(read_texts(["sample:python-docs"]))
    heldout = list(read_texts(["sample:python-docs:heldout"]))
    assert len(train) > 100 and len(heldout) > 10
    assert not set(train) & set(heldout)
    assert 0.05 < len(heldout) / (len(train) + len(heldout)) < 0.2


def test_sphinx_html_to_text():
    html = """<html><head><title>T</title><script>var x = 1;</script></head><body>
    <nav>Menu</nav><div class="related">Next</div>
    <div class="body" role="main"><h1>Title<a class="headerlink" href="#t">¶</a></h1>
    <p>Some   <code>inline</code>
       text.<br>After break.</p>
    <div class="highlight"><pre>def f():
    return  1</pre></div><style>p {}</style><img src="x.png">
    <ul><li>one</li><li>two</li></ul></div>
    <div class="footer">Copyright</div></body></html>"""
    assert ds._SphinxText.text(html) == (
        "Title\n\nSome inline text.\n\nAfter break.\n\ndef f():\n    return  1\n\none\n\ntwo\n")


def test_build_once_leaves_nothing_on_failure(tmp_path):
    def broken(tmp: Path) -> dict:
        (tmp / "half.txt").write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ds._build_once(tmp_path / "set", broken)
    assert list(tmp_path.iterdir()) == []
    out = ds._build_once(tmp_path / "set", lambda tmp: {"n": 1})
    assert json.loads((out / "meta.json").read_text()) == {"n": 1}
    assert ds._build_once(tmp_path / "set", broken) == out  # built once: not redone
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_cache_root_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKZOO_CACHE", str(tmp_path))
    assert ds.cache_root() == tmp_path
    assert ds.cache_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("TOKZOO_CACHE")
    assert ds.cache_root() == Path.home() / ".cache/tokzoo/datasets"


def test_apt_unpack_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="needs apt-get and dpkg"):
        ds._apt_unpack("bible-kjv", tmp_path)


LOCALE = Path("/usr/share/locale")


@pytest.mark.skipif(len(list(LOCALE.glob("*/LC_MESSAGES/*.mo"))) < 200,
                    reason="needs the gettext catalogues of a Debian/Ubuntu install")
def test_build_parallel_text(tmp_path):
    out = ds.build_parallel_text(tmp_path, min_languages=20)
    meta = json.loads((out / "meta.json").read_text())
    langs = meta["languages"]
    assert langs[0] == "en" and len(langs) >= 21 and meta["messages"] > 100
    lines = {}
    for lang in langs:
        text = (out / f"{lang}.txt").read_text(encoding="utf-8")
        lines[lang] = text.splitlines()  # every Unicode line break, not just "\n"
        assert len(lines[lang]) == meta["messages"] and text.count("\n") == meta["messages"]
    assert sorted(p.stem for p in out.glob("*.txt")) == sorted(langs)

    # Cross-check our .mo reader against the stdlib's on one language: line i of its file
    # is the first translation (catalogues by name) of a msgid that flattens to line i of
    # en.txt. (The stdlib cannot read catalogues whose header is not UTF-8: pick a
    # language whose catalogues it reads.)
    for lang in langs[1:]:
        expected: dict[str, str] = {}
        try:
            for mo in sorted((LOCALE / lang / "LC_MESSAGES").glob("*.mo")):
                if mo.is_symlink():
                    continue
                with open(mo, "rb") as f:
                    catalog = gettext.GNUTranslations(f)._catalog
                for msgid, msgstr in catalog.items():
                    if isinstance(msgid, str) and msgid and "\x04" not in msgid:
                        english, text = ds._one_line(msgid), ds._one_line(msgstr)
                        if text and text != english:
                            expected.setdefault(english, text)
            break
        except UnicodeDecodeError:
            continue
    assert [expected[e] for e in lines["en"]] == lines[lang]
    assert ds.build_parallel_text(tmp_path, min_languages=20) == out


def test_build_text_bench(tmp_path):
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("needs apt-get and dpkg")
    try:
        out = ds.build_text_bench(tmp_path)
    except RuntimeError as err:  # offline, or a release without these packages
        pytest.skip(f"could not fetch the Debian packages: {err}")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kjv/train"]["documents"] + meta["kjv/heldout"]["documents"] == 1189
    assert meta["python-doc/train"]["documents"] > 300
    train, heldout = sorted((out / "train").glob("*.txt")), sorted((out / "heldout").glob("*.txt"))
    assert not {p.name for p in train} & {p.name for p in heldout}
    assert 0.05 < len(heldout) / (len(train) + len(heldout)) < 0.2
    genesis = (out / "train" / "kjv-Ge1.txt").read_text()
    assert genesis.startswith("In the beginning God created the heaven and the earth.\n")
    assert len(genesis.splitlines()) == 31
    os_page = next((out / d / "python-doc-library-os.txt") for d in ("train", "heldout")
                   if (out / d / "python-doc-library-os.txt").exists())
    text = os_page.read_text()
    assert text.startswith("os — Miscellaneous operating system interfaces\n") and "<" not in text[:200]
    stats = ReadStats()
    assert sum(1 for _ in read_texts([out / "heldout"], stats=stats)) >= len(heldout)
    assert not stats.skipped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text-bench"]  # no temp left behind
