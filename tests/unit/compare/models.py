"""Small in-memory archives and wheels for the compare tests."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rebuilder.archive.zipread import ZipArchive, ZipEntry, read_zip
from tests.support.dists import WheelEntry, record_line, wheel_entries, write_wheel

DIST = "demo-1.0.dist-info"
RECORD = f"{DIST}/RECORD"
CODE = "demo/__init__.py"
FILES = {
    CODE: b'__version__ = "1.0"\n' + b"def f(x):\n    return x * 2\n" * 40,
    "demo/util.py": b"VALUE = 1\n" * 30,
}


def entries(files: dict[str, bytes] | None = None) -> list[WheelEntry]:
    return wheel_entries(files=dict(FILES if files is None else files))


def build(tmp_path: Path, name: str, items: Sequence[WheelEntry], **kwargs: object) -> Path:
    return write_wheel(tmp_path / name, items, **kwargs)  # type: ignore[arg-type]


def rewrite_record(items: list[WheelEntry]) -> list[WheelEntry]:
    """A truthful RECORD for ``items`` (as a backend would write after a change)."""
    body = [e for e in items if e.name != RECORD]
    record = "".join(record_line(e.name, e.data) + "\n" for e in body) + f"{RECORD},,\n"
    return [*body, WheelEntry(RECORD, record.encode())]


def with_data(items: list[WheelEntry], name: str, data: bytes) -> list[WheelEntry]:
    return [replace(e, data=data) if e.name == name else e for e in items]


def model(tmp_path: Path, items: Sequence[WheelEntry], name: str = "m.whl") -> ZipArchive:
    return read_zip(build(tmp_path, name, items))


def entry(name: str, data: bytes = b"x", **fields: object) -> ZipEntry:
    return replace(ZipEntry(name, data, compress_type=zipfile.ZIP_DEFLATED), **fields)  # type: ignore[arg-type]
