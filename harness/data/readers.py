"""Read rows from a data location: csv, tsv, jsonl, json, parquet, optionally compressed
(.bz2, .gz, .zip), or a folder per class of text files."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from harness.data.sources import DataLocation

Row = dict[str, Any]
FORMATS = ("auto", "csv", "tsv", "jsonl", "json", "parquet", "folders")
MAX_LINE_BYTES = 64 * 2**20  # a longer line is refused before it is parsed (a 2 GB line never reaches json or csv)
COMPRESSIONS = (".bz2", ".gz", ".zip")


def detect_format(location: DataLocation, declared: str) -> str:
    """The format to read `location` as: the declared one, else from the (inner) file name."""
    if declared != "auto":
        return declared
    if location.path.is_dir():
        return "folders"
    name = location.member or location.path.name
    if location.path.suffix == ".zip" and location.member is None:
        names = _zip_names(location.path)
        if len(names) != 1:
            raise ValueError(
                f"{location.path}: the archive holds {len(names)} files ({', '.join(names[:5])}); "
                f"name one as {location.path.name}#MEMBER"
            )
        name = names[0]
    suffixes = [s for s in Path(name).suffixes if s not in COMPRESSIONS]
    fmt = suffixes[-1].lstrip(".") if suffixes else ""
    if fmt not in FORMATS or fmt == "auto":
        raise ValueError(
            f"{location}: cannot tell the data format from the name; set [data] format to one of "
            f"{', '.join(f for f in FORMATS if f != 'auto')}"
        )
    return fmt


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return [n for n in archive.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a readable zip archive") from None


def _raw_bytes(location: DataLocation) -> bytes:
    path = location.path
    if path.suffix == ".bz2":
        return bz2.decompress(path.read_bytes())
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".zip":
        names = _zip_names(path)
        with zipfile.ZipFile(path) as archive:
            if location.member is None:
                if len(names) != 1:
                    raise ValueError(
                        f"{path}: the archive holds {len(names)} files ({', '.join(names[:5])}); "
                        f"name one as {path.name}#MEMBER"
                    )
                return archive.read(names[0])
            if location.member not in names:
                raise ValueError(f"{path}: no member {location.member!r}; it holds {', '.join(names[:10])}")
            return archive.read(location.member)
    return path.read_bytes()


def decode(data: bytes, where: str, errors: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped); a one-line error at the first bad byte."""
    try:
        return data.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{where}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f'{exc.start}); set [data] encoding_errors = "replace" to read it anyway'
        ) from None


def _check_line_lengths(data: bytes, where: str) -> None:
    """A one-line error naming the first line longer than MAX_LINE_BYTES."""
    start, number = 0, 1
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if end - start > MAX_LINE_BYTES:
            raise ValueError(
                f"{where}: line {number}: {end - start:,} bytes, longer than the {MAX_LINE_BYTES:,}-byte limit "
                f"for one row; is the file truncated or missing its line breaks?"
            )
        start, number = end + 1, number + 1


def _read_jsonl(text: str, where: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}:{number}: not a JSON object: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _read_json(text: str, where: str) -> list[Row]:
    """A list of objects, or an object of objects (each row gets its key as `id` unless it has one)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        return [{"id": key, **value} for key, value in data.items()]
    if isinstance(data, list) and all(isinstance(v, dict) for v in data):
        return data
    raise ValueError(f"{where}: expected a list of objects or an object of objects")


def _read_table(text: str, where: str, separator: str) -> list[Row]:
    import pandas as pd

    try:  # "NA" or "" is text, not NaN
        frame = pd.read_csv(io.StringIO(text), sep=separator, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise ValueError(
            f"{where}: not a valid {'TSV' if separator == chr(9) else 'CSV'} file: {str(exc).strip().splitlines()[-1]}"
        ) from None
    return frame.to_dict(orient="records")


def _read_folders(root: Path, errors: str) -> list[Row]:
    """One row per file: `text` is the file, `label` its folder, `file` its path under the root."""
    rows = []
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: a folder-per-class layout needs one sub-folder per label; found none")
    for folder in classes:
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            rows.append(
                {
                    "text": decode(path.read_bytes(), str(path), errors).strip(),
                    "label": folder.name,
                    "file": f"{folder.name}/{path.name}",
                }
            )
    return rows


def read_rows(location: DataLocation, declared_format: str = "auto", encoding_errors: str = "strict") -> list[Row]:
    """Every row of the file (or folder) at `location`, as dicts keyed by column."""
    where = str(location)
    fmt = detect_format(location, declared_format)
    if fmt == "folders":
        if not location.path.is_dir():
            raise ValueError(f"{where}: format 'folders' needs a folder")
        return _read_folders(location.path, encoding_errors)
    if location.path.is_dir():
        raise ValueError(f"{where}: is a folder; a folder is read as one sub-folder per label (format 'folders')")
    data = _raw_bytes(location)
    if fmt == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data)).to_dict(orient="records")
    _check_line_lengths(data, where)
    text = decode(data, where, encoding_errors)
    if fmt == "jsonl":
        return _read_jsonl(text, where)
    if fmt == "json":
        return _read_json(text, where)
    return _read_table(text, where, "\t" if fmt == "tsv" else ",")
