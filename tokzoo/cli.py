"""The ``tokzoo`` command: parse, call the library, print.

Bad input exits with code 2 and one line that names the problem (``--debug`` shows the
traceback). Every command that writes a file writes it beside the target under a temp
name and renames it at the end, so an interrupted run leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from tqdm import tqdm

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit code 2."""


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temp path beside ``target`` that replaces it only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(model: str):
    import tokzoo

    return tokzoo.from_pretrained(model)


def _load_text_or_image(model: str, verb: str):
    tok = _load(model)
    if tok.modality not in ("text", "image"):
        raise UsageError(f"{model} is a {tok.modality} tokenizer; {verb} handles text and images")
    return tok


# -- commands ------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> None:
    from . import registry

    for name in registry.list_tokenizers(args.modality):
        cls = registry.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:<12} {cls.modality:<6} {doc[0] if doc else ''}")


def cmd_train(args: argparse.Namespace) -> None:
    import tokzoo
    from .config import parse_override

    overrides = dict(parse_override(item) for item in args.overrides)
    tok = tokzoo.train(args.config, data=args.data, out=args.out, progress=not args.quiet, **overrides)
    print(f"saved {tok.name} tokenizer to {args.out}")
    if tok.training.get("skipped_files"):
        print(f"  skipped {tok.training['skipped_files']} unreadable file(s) in the training data")
    metrics = tok.training.get("metrics") or {}
    for key, value in metrics.items():
        print(f"  {key:<20} {_fmt(value)}")


def _iter_inputs(inputs: Sequence[str], text_field: str):
    from .datasets import ReadStats, read_texts

    stats = ReadStats()
    return read_texts(inputs, text_field=text_field, stats=stats), stats


def _encode_images(tok, args: argparse.Namespace) -> None:
    import numpy as np

    from .datasets import ReadStats

    out = Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"--out must end in .npz for image codes, got {out.name}")
    stats = ReadStats()
    keys, codes = tok.encode_files(args.inputs, num_tokens=args.num_tokens, batch_size=args.batch_size,
                                   progress=not args.quiet, stats=stats)
    dtype = np.uint16 if tok.codebook_size <= 1 << 16 else np.uint32
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, codes=codes.numpy().astype(dtype), keys=np.array(keys, dtype=str),
                     tokenizer=np.array(tok.name))
    skipped = f", {len(stats.skipped)} file(s) skipped" if stats.skipped else ""
    print(f"encoded {len(keys)} image(s) -> codes {tuple(codes.shape)} in {out}{skipped}", file=sys.stderr)


def cmd_encode(args: argparse.Namespace) -> None:
    import numpy as np

    from .datasets import batched

    tok = _load_text_or_image(args.model, "encode")
    if tok.modality == "image":
        return _encode_images(tok, args)
    if args.num_tokens is not None:
        raise UsageError("--num-tokens applies to image tokenizers")
    out = Path(args.out)
    if out.suffix not in (".jsonl", ".npy"):
        raise UsageError(f"--out must end in .jsonl or .npy, got {out.name}")
    docs, stats = _iter_inputs(args.inputs, args.field)
    separator = tok.encode(tok.config.special_tokens[0]) if tok.config.special_tokens else []
    n_docs = n_tokens = 0
    with atomic_path(out) as tmp:
        parts: list[np.ndarray] = []
        with open(tmp, "w", encoding="utf-8") if out.suffix == ".jsonl" else io.StringIO() as f:
            bar = tqdm(unit="B", unit_scale=True, desc="encode", file=sys.stderr,
                       disable=True if args.quiet else None)  # None: only on a terminal
            for batch in batched(docs, args.batch_size):
                for ids in tok.encode_batch(batch):
                    if out.suffix == ".jsonl":
                        f.write(json.dumps({"ids": ids}) + "\n")
                    else:
                        parts.append(np.asarray(ids + separator, dtype=np.int64))
                    n_docs += 1
                    n_tokens += len(ids)
                bar.update(sum(len(d.encode("utf-8")) for d in batch))
            bar.close()
        if out.suffix == ".npy":
            dtype = np.uint16 if tok.vocab_size <= 1 << 16 else np.uint32
            flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            np.save(tmp, flat.astype(dtype), allow_pickle=False)
    if n_docs == 0:
        out.unlink(missing_ok=True)
        raise UsageError(f"no text found in {', '.join(args.inputs)}")
    skipped = f", {len(stats.skipped)} file(s) skipped" if stats.skipped else ""
    print(f"encoded {n_docs} document(s), {stats.bytes:,} bytes -> {n_tokens:,} tokens in {out}{skipped}",
          file=sys.stderr)


def _read_ids(path: Path) -> list[list[int]]:
    import numpy as np

    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise UsageError(f"{path} is not a numeric .npy file: {err}") from None
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise UsageError(f"{path}: expected a 1-D integer array, got {arr.dtype} {arr.shape}")
        return [arr.astype(np.int64).tolist()]
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                ids = json.loads(line)["ids"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UsageError(f"{path}:{n}: expected a JSON object with an 'ids' list") from None
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise UsageError(f"{path}:{n}: 'ids' must be a list of integers")
            rows.append(ids)
        return rows
    raise UsageError(f"ids file must end in .jsonl or .npy, got {path.name}")


def _decode_images(tok, args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from PIL import Image

    path = Path(args.ids)
    if path.suffix != ".npz" or not path.is_file():
        raise UsageError(f"expected a .npz file of image codes from `tokzoo encode`, got {path}")
    if args.out is None:
        raise UsageError("--out DIR is needed: decoded images are written as PNG files")
    try:
        with np.load(path, allow_pickle=False) as data:
            codes, keys = data["codes"].astype(np.int64), [str(k) for k in data["keys"]]
    except (ValueError, KeyError, OSError) as err:
        raise UsageError(f"{path}: not a codes file ({err})") from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    # the images keep their paths below the inputs' common folder (shard members below the shard)
    root = os.path.commonpath([os.path.dirname(k) for k in keys]) if keys else ""
    try:
        for start in range(0, len(codes), 32):
            images = tok.decode(torch.from_numpy(codes[start:start + 32]))
            for key, image in zip(keys[start:start + 32], images):
                relative = Path(os.path.relpath(key, root) if root else key)
                target = tmp.joinpath(*(p for p in relative.parts if p not in ("..", "/"))).with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                pixels = (image.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
                Image.fromarray(pixels).save(target)
        if out.exists():
            raise UsageError(f"--out {out} exists; choose a new folder")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"decoded {len(codes)} image(s) into {out}", file=sys.stderr)


def cmd_decode(args: argparse.Namespace) -> None:
    tok = _load_text_or_image(args.model, "decode")
    if tok.modality == "image":
        return _decode_images(tok, args)
    rows = _read_ids(Path(args.ids))
    path = Path(args.ids)
    texts = [tok.decode(ids) for ids in rows]
    if args.out is None:
        sys.stdout.write("".join(texts) if path.suffix == ".npy" else
                         "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
        return
    out = Path(args.out)
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            if out.suffix == ".jsonl":
                f.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
            else:
                f.write("".join(texts))
    print(f"decoded {len(texts)} document(s) into {out}", file=sys.stderr)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _read_parallel(folder: str) -> dict[str, list[str]]:
    path = Path(folder)
    files = sorted(path.glob("*.txt")) if path.is_dir() else []
    if not files:
        raise UsageError(f"--parallel {folder}: expected a folder of <language>.txt files")
    return {f.stem: f.read_text(encoding="utf-8").splitlines() for f in files}


def _eval_images(toks: dict, args: argparse.Namespace) -> dict[str, dict]:
    from PIL import Image

    if not args.data:
        raise UsageError("give --data PATH... with held-out images")
    report = {}
    for name, tok in toks.items():
        counts = args.num_tokens or [None]
        rows, grid = tok.evaluate(args.data, token_counts=counts)
        report.update({f"{name} @ {label}": {"tokenizer": tok.name, **row} for label, row in rows.items()})
        picture = Path(args.grid) if len(toks) == 1 else Path(args.grid).with_name(
            f"{Path(args.grid).stem}-{Path(name).name}.png")
        with atomic_path(picture) as tmp:
            Image.fromarray(grid).save(tmp, format="PNG")
        print(f"originals and reconstructions: {picture}", file=sys.stderr)
    return report


def cmd_eval(args: argparse.Namespace) -> None:
    from .datasets import read_texts

    toks = {m: _load(m) for m in args.models}
    modalities = {t.modality for t in toks.values()}
    if len(modalities) > 1:
        raise UsageError("compare tokenizers of one modality at a time")
    if modalities == {"image"}:
        return _print_report(_eval_images(toks, args), args)
    if modalities != {"text"}:
        raise UsageError(f"eval handles text and image tokenizers, not {modalities.pop()}")
    texts = list(read_texts(args.data, text_field=args.field)) if args.data else []
    if args.data and not texts:
        raise UsageError(f"no text found in {', '.join(args.data)}")
    parallel = _read_parallel(args.parallel) if args.parallel else None
    if not texts and parallel is None:
        raise UsageError("give --data PATH... and/or --parallel DIR")
    report: dict[str, dict[str, float]] = {}
    bar = tqdm(toks.items(), desc="eval", file=sys.stderr, disable=True if args.quiet or len(toks) < 2 else None)
    for name, tok in bar:
        row = {"tokenizer": tok.name, **(tok.measure(texts) if texts else {})}
        if parallel is not None:
            premium = tok.premium(parallel, reference=args.reference)
            row["premium_mean"] = sum(premium.values()) / len(premium)
            row["premium_max"] = max(premium.values())
            row.update({f"premium_{lang}": v for lang, v in sorted(premium.items())})
        report[name] = row
    _print_report(report, args)


def _print_report(report: dict[str, dict], args: argparse.Namespace) -> None:
    """Metrics as rows, models as columns; optionally written as .json or .csv."""
    metrics = list(dict.fromkeys(k for row in report.values() for k in row))
    width = max(len(m) for m in metrics)
    print(f"{'':<{width}}  " + "  ".join(f"{Path(m).name[-16:]:>16}" for m in report))
    for key in metrics:
        print(f"{key:<{width}}  " + "  ".join(f"{_fmt(row.get(key, '')):>16}" for row in report.values()))
    if args.out:
        out = Path(args.out)
        with atomic_path(out) as tmp:
            if out.suffix == ".csv":
                with open(tmp, "w", newline="") as f:
                    writer = csv.writer(f)
                    writer.writerow(["model", *metrics])
                    writer.writerows([m, *(row.get(k, "") for k in metrics)] for m, row in report.items())
            else:
                tmp.write_text(json.dumps({"data": args.data, "parallel": args.parallel, "models": report},
                                          indent=2) + "\n")


def cmd_info(args: argparse.Namespace) -> None:
    from .hub import read_config, resolve_dir

    directory = resolve_dir(args.model)
    config = read_config(directory)
    tok = _load(args.model)
    print(f"{args.model}: {tok.name} ({tok.modality}), tokzoo {config.get('tokzoo_version', '?')}")
    if tok.modality == "text":
        print(f"  trained vocab        {tok.vocab_size:,}")
    for key, value in config.items():
        if key not in ("tokenizer", "tokzoo_version", "training"):
            print(f"  {key:<20} {value}")
    training = config.get("training") or {}
    for key, value in training.items():
        if key != "metrics":
            print(f"  training.{key:<11} {value}")
    for key, value in (training.get("metrics") or {}).items():
        print(f"  metric.{key:<13} {_fmt(value)}")


def cmd_push(args: argparse.Namespace) -> None:
    from .hub import push

    url = push(args.dir, args.repo_id, private=args.private)
    print(f"pushed {args.dir} to {args.repo_id}: {url}")


# -- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokzoo", description="Train, use and evaluate discrete tokenizers.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the tokenizer families")
    p.add_argument("--modality", choices=["text", "image", "audio"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train a tokenizer and save it as a checkpoint dir",
                       description="Train NAME (registry defaults) or CONFIG (a YAML recipe); "
                                   "key=value pairs override config keys (dotted keys for nested ones).")
    p.add_argument("config", metavar="NAME|CONFIG")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="files, folders, or built-in samples such as sample:python-docs")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("encode", help="encode text (files, jsonl, parquet) or images (folders, shards) into codes")
    p.add_argument("model", metavar="MODEL", help="checkpoint dir or Hub repo id")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="text: .jsonl (one {\"ids\": [...]} per document) or .npy (all ids, documents "
                        "joined by the first special token); images: .npz (codes [N, K] and file keys)")
    p.add_argument("--field", default="text", help="jsonl field / parquet column holding the text")
    p.add_argument("--num-tokens", type=int, help="images: keep the first k tokens (1D tokenizers)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="decode an ids file (.jsonl/.npy) to text, or codes (.npz) to PNG images")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("ids", metavar="IDS_FILE")
    p.add_argument("--out", metavar="FILE|DIR",
                   help="text file, or .jsonl of {\"text\": ...} (default stdout); images: a new folder")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("eval", help="compare tokenizers side by side on the same data")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--data", nargs="+", metavar="PATH", default=[])
    p.add_argument("--parallel", metavar="DIR", help="folder of <language>.txt parallel lines: token premium")
    p.add_argument("--reference", default="en", help="reference language for the premium")
    p.add_argument("--num-tokens", type=int, nargs="+", help="images: token counts to compare (1D tokenizers)")
    p.add_argument("--grid", default="eval-grid.png", help="images: where the reconstruction grid goes")
    p.add_argument("--field", default="text")
    p.add_argument("--out", metavar="FILE", help="write the report as .json or .csv")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("model", metavar="MODEL")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("push", help="upload a checkpoint dir to the Hugging Face Hub")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("repo_id", metavar="REPO_ID")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=cmd_push)
    return parser


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _split_overrides(args: argparse.Namespace, extra: list[str], parser: argparse.ArgumentParser) -> None:
    """key=value pairs may stand anywhere on a train command line, even after --data."""
    if args.command != "train":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return
    stray = [e for e in extra if not _OVERRIDE.match(e)]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    moved = [d for d in args.data if _OVERRIDE.match(d) and not Path(d).exists()]
    args.data = [d for d in args.data if d not in moved]
    args.overrides = [*args.overrides, *moved, *extra]
    if not args.data:
        parser.error("train: --data needs at least one PATH")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    _split_overrides(args, extra, parser)
    try:
        args.func(args)
    except (UsageError, ValueError, TypeError, OSError, RuntimeError) as err:  # OSError: files, network
        if args.debug:
            raise
        print(f"tokzoo {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
