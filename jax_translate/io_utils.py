"""Small file-system helpers: folders checked before any work, atomic writes."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from jax_translate.errors import UsageError


def writable_dir(path: str | Path, what: str) -> Path:
    """Creates ``path`` if needed; a one-line UsageError if it cannot be used."""
    path = Path(path).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create {what} {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"{what} {path} is not writable")
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write then rename, so a crash never leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def _csv_lines(fields, rows, header: bool) -> str:
    """``rows`` (dicts; floats to 4 decimals; keys outside ``fields`` ignored) as CSV text."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items()}
                     for row in rows)
    return out.getvalue()


def write_csv(path: Path, fields, rows) -> None:
    """A CSV of columns ``fields`` holding ``rows``, written atomically (the library's
    one CSV writer with :func:`append_csv`: every experiment's table goes through them)."""
    atomic_write_text(Path(path), _csv_lines(fields, rows, header=True))


def append_csv(path: Path, fields, rows) -> None:
    """Appends ``rows`` (dicts; floats to 4 decimals) to a CSV of columns ``fields``,
    writing the header first if the file is new: results that land as they are made."""
    path = Path(path)
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        f.write(_csv_lines(fields, rows, header=new))
