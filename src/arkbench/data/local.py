"""Readers for the original on-disk layouts (the ``local`` source).

A reader takes ``(spec, folder, root, bad_lines)`` and returns raw splits as lists of
rows (plain dicts already matching ``spec.features``), named as on disk (``train``,
``dev``, ``all``...). :mod:`arkbench.data.load` turns them into the task's splits.

Errors in the input are :class:`DataFormatError` naming ``file:line`` and what is
wrong. ``bad_lines="skip"`` turns wrong column counts / bad values into warnings
(the lines are counted in ``Report.skipped``); GLUE's QQP skips by default because
the original file has broken lines.
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from datasets import ClassLabel, Features, Value

from ..errors import DataFormatError, DataMissingError
from .registry import LocalSource, TaskSpec

log = logging.getLogger(__name__)
csv.field_size_limit(1 << 30)

Rows = list[dict[str, Any]]


@dataclass
class Report:
    """What a reader noticed: files read, lines skipped."""

    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bad_lines: str = "error"   # error | skip

    def bad(self, where: str, msg: str) -> None:
        if self.bad_lines != "skip":
            raise DataFormatError(f"{where}: {msg}")
        log.warning("skipping %s: %s", where, msg)
        self.skipped.append(f"{where}: {msg}")


# --------------------------------------------------------------------------- helpers
def encode_value(value: Any, feat: Any, where: str) -> Any:
    """Convert one raw field to what `feat` stores; DataFormatError names `where`."""
    if isinstance(feat, ClassLabel):
        return encode_label(value, feat, where)
    if isinstance(feat, Value) and feat.dtype.startswith(("float", "int")):
        try:
            return float(value) if feat.dtype.startswith("float") else int(value)
        except (TypeError, ValueError):
            raise DataFormatError(f"{where}: expected a number, got {value!r}") from None
    return value


def encode_label(value: Any, feat: ClassLabel, where: str) -> int:
    """Class index from an index (``1``, ``"1"``) or a name (case-insensitive)."""
    s = str(value).strip()
    if s.lstrip("-").isdigit() and 0 <= int(s) < feat.num_classes:
        return int(s)
    lower = [n.lower() for n in feat.names]
    if s.lower() in lower:
        return lower.index(s.lower())
    raise DataFormatError(f"{where}: bad label {value!r}; allowed: "
                          f"{', '.join(feat.names)} or 0..{feat.num_classes - 1}")


def first_existing(folder: Path, names: Iterable[str]) -> Path | None:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    return None


def read_text(path: Path) -> str:
    """UTF-8, falling back to latin-1 (the original rt-polarity release is latin-1)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def check_utf8(path: Path) -> None:
    """DataFormatError naming the line of the first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataFormatError(f"{path}:{line}: not UTF-8 text ({e.reason}, byte 0x{data[e.start]:02x})") from None


def read_id_list(path: Path | None) -> list[str] | None:
    return None if path is None else [x for x in path.read_text().split() if x]


def image_row(path: Path) -> dict[str, Any]:
    return {"bytes": path.read_bytes(), "path": path.name}


# --------------------------------------------------------------------------- TSV
def read_tsv(spec: TaskSpec, src: LocalSource, folder: Path, rep: Report) -> dict[str, Rows]:
    """Tab-separated files (GLUE, SNLI, SICK), ``csv.QUOTE_NONE``.

    options: ``header`` (bool), ``drop_labels`` (raw labels whose rows are dropped,
    e.g. SNLI's ``-``), ``split_column`` ((column, {value: raw split})).
    """
    header = src.options.get("header", True)
    drop = set(src.options.get("drop_labels", ()))
    split_col, split_values = src.options.get("split_column") or (None, {})
    feats: Features = spec.features
    raw: dict[str, Rows] = {}
    for split, names in src.files.items():
        path = first_existing(folder, names)
        if path is None:
            continue
        rep.files.append(str(path))
        check_utf8(path)
        with path.open(newline="", encoding="utf-8") as f:
            lines = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            if header:
                head = next(lines, None) or []
                cols = {name: i for i, name in enumerate(head)}
                missing = [c for fld in feats if (c := src.columns.get(fld, fld)) not in cols
                           and not (fld == "idx" and "idx" not in src.columns)]
                if missing:
                    raise DataFormatError(f"{path}:1: header lacks column(s) {missing}; "
                                          f"found {head}")
                n_cols = len(head)
            else:
                cols = {}
                n_cols = max(int(c) for c in src.columns.values()) + 1
            split_at = cols.get(split_col) if split_col else None
            label_at = _at(src.columns.get("label", "label"), cols)
            data_row = 0
            for rec in lines:
                where = f"{path}:{lines.line_num}"
                if not rec or rec == [""]:
                    continue
                if len(rec) != n_cols:
                    rep.bad(where, f"expected {n_cols} tab-separated columns, got {len(rec)}")
                    continue
                if rec[label_at] in drop:
                    continue
                try:
                    row = {}
                    for fld, feat in feats.items():
                        if fld == "idx" and "idx" not in src.columns:
                            row[fld] = data_row
                            continue
                        row[fld] = encode_value(rec[_at(src.columns.get(fld, fld), cols)], feat, where)
                except DataFormatError as e:
                    rep.bad(where, str(e).split(": ", 1)[1])
                    continue
                data_row += 1
                target = split_values.get(rec[split_at], split) if split_at is not None else split
                raw.setdefault(target, []).append(row)
    return raw


def _at(col: str | int, cols: dict[str, int]) -> int:
    return col if isinstance(col, int) else cols[col]


# --------------------------------------------------------------------------- SQuAD
def read_squad_json(spec: TaskSpec, src: LocalSource, folder: Path, rep: Report) -> dict[str, Rows]:
    """SQuAD v1.1 / v2.0 JSON. ``is_impossible`` questions get empty answers; every
    answer is checked: ``context[start:start+len(text)] == text``."""
    raw: dict[str, Rows] = {}
    for split, names in src.files.items():
        path = first_existing(folder, names)
        if path is None:
            continue
        rep.files.append(str(path))
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
        rows = raw.setdefault(split, [])
        where = f"{path}: data"
        try:
            for a, article in enumerate(doc.get("data", [])):
                for p, para in enumerate(article["paragraphs"]):
                    ctx = para["context"]
                    for q, qa in enumerate(para["qas"]):
                        where = f"{path}: data[{a}].paragraphs[{p}].qas[{q}] (id {qa.get('id')})"
                        answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                        for ans in answers:
                            s, t = int(ans["answer_start"]), ans["text"]
                            if ctx[s:s + len(t)] != t:
                                rep.bad(where, f"answer {t!r} is not at answer_start {s}")
                        rows.append({"id": qa["id"], "title": article.get("title", ""),
                                     "context": ctx, "question": qa["question"],
                                     "answers": {"text": [x["text"] for x in answers],
                                                 "answer_start": [int(x["answer_start"]) for x in answers]}})
        except DataFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            what = f"missing field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            raise DataFormatError(f"{where}: not in SQuAD's layout ({what})") from None
    return raw


# --------------------------------------------------------------------------- one-line formats
def read_rt_polarity(spec: TaskSpec, src: LocalSource, folder: Path, rep: Report) -> dict[str, Rows]:
    """rt-polarity.{neg,pos}: one sentence a line -> one raw split ``all``."""
    rows: Rows = []
    for label in ("neg", "pos"):
        path = first_existing(folder, src.files[label])
        if path is None:
            raise DataMissingError(f"{folder}: missing {src.files[label][0]}")
        rep.files.append(str(path))
        code = spec.features["label"].str2int(label)
        rows += [{"text": line.strip(), "label": code}
                 for line in read_text(path).splitlines() if line.strip()]
    return {"all": rows}


def read_tatoeba(spec: TaskSpec, src: LocalSource, folder: Path, rep: Report) -> dict[str, Rows]:
    """Tatoeba ``cmn.txt``: ``EN\\tZH`` (newer exports add an attribution column)."""
    path = first_existing(folder, src.files["all"])
    if path is None:
        return {}
    rep.files.append(str(path))
    rows: Rows = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) not in (2, 3) or not parts[0].strip() or not parts[1].strip():
            rep.bad(f"{path}:{n}", f"expected `EN<tab>ZH[<tab>attribution]`, got {len(parts)} column(s)")
            continue
        rows.append({"id": str(n - 1), "translation": {"en": parts[0].strip(), "zh": parts[1].strip()}})
    return {"all": rows}


def read_lines(spec: TaskSpec, src: LocalSource, folder: Path, rep: Report) -> dict[str, Rows]:
    """A raw text corpus (WikiText ``wiki.*.raw``): one row per line, blank lines kept.

    option ``pool_without_train``: when there is no train file, every file found is
    one raw split ``all`` (in ``files`` order), from which all splits are carved.
    """
    if not folder.is_dir():
        for alt in src.options.get("alt_paths", ()):
            if (folder.parent / alt).is_dir():
                folder = folder.parent / alt
                break
    raw: dict[str, Rows] = {}
    for split, names in src.files.items():
        path = first_existing(folder, names)
        if path is not None:
            rep.files.append(str(path))
            raw[split] = [{"text": line} for line in read_text(path).splitlines()]
    if src.options.get("pool_without_train") and raw and "train" not in raw:
        raw = {"all": [row for rows in raw.values() for row in rows]}
    return raw


# --------------------------------------------------------------------------- captions
def _by_split(rows_by_image: dict[str, Any], folder: Path, src: LocalSource) -> dict[str, list]:
    """Rows keyed by image id -> raw splits from the Flickr8k-CN id lists (else ``all``)."""
    train = read_id_list(first_existing(folder, src.files.get("train", ())))
    val = read_id_list(first_existing(folder, src.files.get("val", ())))
    if train is None or val is None:
        return {"all": list(rows_by_image.values())}
    out: dict[str, list] = {"train": [], "val": []}
    lookup = {i: "train" for i in train} | {i: "val" for i in val}
    for image_id, rows in rows_by_image.items():
        if image_id in lookup:
            out[lookup[image_id]].append(rows)
    return out


def _caption_rows(caps: dict[str, list[str]], image_dir: Path, skip_missing: bool) -> dict[str, Any]:
    rows = {}
    for image_id, texts in caps.items():
        photo = image_dir / f"{image_id}.jpg"
        if not photo.is_file():
            if skip_missing:
                continue
            raise DataFormatError(f"{photo}: photo of captioned image {image_id} not found")
        rows[image_id] = {"image_id": image_id, "image": image_row(photo), "captions": texts}
    return rows


def read_flickr8k(spec: TaskSpec, src: LocalSource, folder: Path, rep: Report) -> dict[str, Rows]:
    """``captions.txt`` (CSV ``image,caption``, 5 a photo) + ``Images/``: one row a photo."""
    path = first_existing(folder, src.files["captions"])
    if path is None:
        return {}
    rep.files.append(str(path))
    caps: dict[str, list[str]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        head = next(reader, None)
        if head != ["image", "caption"]:
            raise DataFormatError(f"{path}:1: expected header 'image,caption', got {head}")
        for rec in reader:
            if len(rec) != 2:
                rep.bad(f"{path}:{reader.line_num}", f"expected 2 CSV columns, got {len(rec)}")
                continue
            caps.setdefault(rec[0].removesuffix(".jpg"), []).append(rec[1].strip())
    rows = _caption_rows(caps, folder / "Images", skip_missing=False)
    split_dir = folder.parent / src.options.get("split_dir", src.path)
    return _by_split(rows, split_dir, src)


def _hash_captions(path: Path, rep: Report) -> dict[str, str]:
    """``<img>.jpg#<tag>#<k> <sentence>`` lines -> {``<img>#<k>``: sentence}."""
    out = {}
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        key, _, text = line.partition(" ")
        parts = key.split("#")
        if len(parts) != 3 or not text.strip():
            rep.bad(f"{path}:{n}", "expected `<image>.jpg#<tag>#<k> <caption>`")
            continue
        out[f"{parts[0].removesuffix('.jpg')}#{parts[2]}"] = text.strip()
    return out


def read_flickr8kcn(spec: TaskSpec, src: LocalSource, folder: Path, rep: Report) -> dict[str, Rows]:
    """Flickr8k-CN Chinese captions, only photos present under ``image_dir``."""
    path = first_existing(folder, src.files["captions"])
    if path is None:
        return {}
    rep.files.append(str(path))
    caps: dict[str, list[str]] = {}
    for key, text in _hash_captions(path, rep).items():
        caps.setdefault(key.split("#")[0], []).append(text)
    rows = _caption_rows(caps, folder.parent / src.options["image_dir"], skip_missing=True)
    return _by_split(rows, folder, src)


def read_flickr8kcn_bitext(spec: TaskSpec, src: LocalSource, folder: Path, rep: Report) -> dict[str, Rows]:
    """English (#enc#) and machine-translated Chinese (#zhb#) captions paired by id."""
    en_path, zh_path = first_existing(folder, src.files["en"]), first_existing(folder, src.files["zh"])
    if en_path is None or zh_path is None:
        return {}
    rep.files += [str(en_path), str(zh_path)]
    en, zh = _hash_captions(en_path, rep), _hash_captions(zh_path, rep)
    by_image: dict[str, Rows] = {}
    for key, text in en.items():
        if key in zh:
            by_image.setdefault(key.split("#")[0], []).append(
                {"id": key, "translation": {"en": text, "zh": zh[key]}})
    return {k: [r for rows in v for r in rows] for k, v in _by_split(by_image, folder, src).items()}


READERS: dict[str, Callable[[TaskSpec, LocalSource, Path, Report], dict[str, Rows]]] = {
    "tsv": read_tsv,
    "squad_json": read_squad_json,
    "rt_polarity": read_rt_polarity,
    "tatoeba": read_tatoeba,
    "lines": read_lines,
    "flickr8k": read_flickr8k,
    "flickr8kcn": read_flickr8kcn,
    "flickr8kcn_bitext": read_flickr8kcn_bitext,
}


def register_reader(name: str, fn: Callable) -> Callable:
    """Add a reader ``fn(spec, src, folder, report) -> {raw split: rows}`` (a paper's task module)."""
    if name in READERS and READERS[name] is not fn:
        raise ValueError(f"local reader {name!r} registered twice")
    READERS[name] = fn
    return fn


def read_local(spec: TaskSpec, root: str | Path, bad_lines: str | None = None) -> tuple[dict[str, Rows], Report]:
    """Raw splits of `spec` from the original layout under `root`."""
    if spec.local is None:
        raise ValueError(f"task {spec.name!r} has no local layout")
    src = spec.local
    default = "skip" if src.options.get("skip_malformed") else "error"
    rep = Report(bad_lines=bad_lines or default)
    root = Path(root)
    raw = READERS[src.reader](spec, src, root / src.path, rep)
    if not any(raw.values()):
        files = sorted({n for names in src.files.values() for n in names})
        raise DataMissingError(f"task {spec.name!r}: no data under {root / src.path} "
                                f"(looked for {', '.join(files)})")
    return {k: v for k, v in raw.items() if v}, rep
