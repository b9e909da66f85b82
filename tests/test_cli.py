"""The tokzoo command: each verb end to end, bad input as exit code 2 with one line."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tokzoo.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys):
    code, out, _ = run(capsys, "list", "--modality", "text")
    assert code == 0 and {line.split()[0] for line in out.splitlines()} >= {"bpe", "superbpe", "unigram"}


def test_train_with_overrides_anywhere(capsys, corpus_file, tmp_path):
    code, out, err = run(capsys, "train", "bpe", "--data", corpus_file, "vocab_size=500", "--out",
                         tmp_path / "m", "min_frequency=3", "--quiet")
    assert code == 0, err
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["vocab_size"], config["min_frequency"]) == (500, 3)
    assert "bytes_per_token" in out


def test_train_from_yaml_recipe(capsys, corpus_file, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("tokenizer: superbpe\nvocab_size: 700\ntransition: 500\n")
    code, _, err = run(capsys, "train", recipe, "--data", corpus_file, "--out", tmp_path / "m", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "config.json").read_text())["transition"] == 500


def test_encode_decode_jsonl_npy_parquet(capsys, trained, tmp_path):
    _, model = trained["superbpe"]
    (tmp_path / "a.txt").write_text("First file.\nSecond line: here.\n")
    (tmp_path / "b.jsonl").write_text('{"text": "from jsonl"}\n{"other": 1}\n{"text": "second"}\n')
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["from parquet", "two"]}), tmp_path / "c.parquet")
    inputs = [tmp_path / "a.txt", tmp_path / "b.jsonl", tmp_path / "c.parquet"]
    code, _, err = run(capsys, "encode", model, *inputs, "--out", tmp_path / "ids.jsonl", "--quiet")
    assert code == 0, err
    assert "5 document(s)" in err and "1 file(s) skipped" in err
    code, _, err = run(capsys, "decode", model, tmp_path / "ids.jsonl", "--out", tmp_path / "back.jsonl")
    assert code == 0, err
    texts = [json.loads(line)["text"] for line in (tmp_path / "back.jsonl").read_text().splitlines()]
    assert texts == ["First file.\nSecond line: here.\n", "from jsonl", "second", "from parquet", "two"]

    code, _, err = run(capsys, "encode", model, tmp_path / "a.txt", "--out", tmp_path / "ids.npy", "--quiet")
    assert code == 0, err
    arr = np.load(tmp_path / "ids.npy")
    assert arr.dtype == np.uint16 and arr.ndim == 1
    code, out, _ = run(capsys, "decode", model, tmp_path / "ids.npy")
    assert out == "First file.\nSecond line: here.\n<|endoftext|>"


def test_eval_side_by_side_with_premium(capsys, trained, tmp_path, heldout_texts):
    (tmp_path / "held.txt").write_text("".join(heldout_texts[:20]))
    parallel = tmp_path / "parallel"
    parallel.mkdir()
    (parallel / "en.txt").write_text("File not found\nPermission denied\n")
    (parallel / "de.txt").write_text("Datei nicht gefunden\nKeine Berechtigung\n")
    models = [trained[f][1] for f in ("bpe", "superbpe", "unigram")]
    code, out, err = run(capsys, "eval", *models, "--data", tmp_path / "held.txt", "--parallel", parallel,
                         "--out", tmp_path / "report.csv", "--quiet")
    assert code == 0, err
    assert "bytes_per_token" in out and "premium_de" in out
    rows = list(csv.DictReader(open(tmp_path / "report.csv")))
    assert [r["tokenizer"] for r in rows] == ["bpe", "superbpe", "unigram"]
    assert all(float(r["premium_en"]) == 1.0 and float(r["premium_de"]) > 1.0 for r in rows)
    assert float(rows[1]["bytes_per_token"]) > float(rows[0]["bytes_per_token"])


def test_info(capsys, trained):
    code, out, _ = run(capsys, "info", trained["unigram"][1])
    assert code == 0 and "unigram (text)" in out and "trained vocab        2,000" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "bpe", "--data", "missing.txt", "--out", "OUT"], "no such file or directory: missing.txt"),
    (["train", "bpe", "--data", "CORPUS", "--out", "OUT", "vocab_sise=10"], "unknown config key 'vocab_sise'"),
    (["train", "bpe", "--data", "CORPUS", "--out", "OUT", "vocab_size=ten"], "expected an integer"),
    (["train", "nope", "--data", "CORPUS", "--out", "OUT"], "unknown tokenizer 'nope'"),
    (["encode", "MODEL", "CORPUS", "--out", "OUT.txt"], "must end in .jsonl or .npy"),
    (["encode", "MODEL", "EMPTY", "--out", "OUT.jsonl"], "no text found"),
    (["decode", "MODEL", "CORPUS"], "must end in .jsonl or .npy"),
    (["decode", "MODEL", "BADIDS"], "expected a JSON object"),
    (["decode", "MODEL", "BIGIDS"], "outside the vocabulary"),
    (["info", "no/such-model"], "no/such-model"),
    (["push", "CORPUS", "org/name"], "no checkpoint directory"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, trained, corpus_file, tmp_path, argv, message):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad.jsonl").write_text("[1, 2]\n")
    (tmp_path / "big.jsonl").write_text('{"ids": [1, 99999]}\n')
    subst = {"CORPUS": corpus_file, "OUT": tmp_path / "out", "OUT.txt": tmp_path / "out.txt",
             "OUT.jsonl": tmp_path / "out.jsonl", "MODEL": trained["bpe"][1], "EMPTY": tmp_path / "empty.txt",
             "BADIDS": tmp_path / "bad.jsonl", "BIGIDS": tmp_path / "big.jsonl"}
    code, out, err = run(capsys, *[subst.get(a, a) for a in argv])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_console_script_exit_code_and_debug(corpus_file, tmp_path):
    exe = shutil.which("tokzoo")
    cmd = [exe] if exe else [sys.executable, "-m", "tokzoo"]
    bad = subprocess.run([*cmd, "train", "bpe", "--data", str(corpus_file), "--out", str(tmp_path / "x"),
                          "vocab_size=-1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "vocab_size" in bad.stderr
    debug = subprocess.run([*cmd, "--debug", "train", "bpe", "--data", str(corpus_file), "--out",
                            str(tmp_path / "x"), "vocab_size=-1"], capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    helped = subprocess.run([*cmd, "train", "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--data" in helped.stdout
