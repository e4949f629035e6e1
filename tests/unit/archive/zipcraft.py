"""Byte-level surgery on small zips, for hostile-archive tests."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

CENTRAL = b"PK\x01\x02"


def write_zip(
    path: Path,
    members: Iterable[tuple[str, bytes]],
    *,
    mode: int = 0o644,
    compress_type: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Names written exactly as given (duplicates too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
                info.external_attr = mode << 16
                info.compress_type = compress_type
                zf.writestr(info, data)
    return path


def patch_central(path: Path, index: int, offset: int, fmt: str, value: int) -> None:
    """Overwrite one field of the ``index``-th central directory record."""
    raw = bytearray(path.read_bytes())
    at = -1
    for _ in range(index + 1):
        at = raw.index(CENTRAL, at + 1)
    struct.pack_into(fmt, raw, at + offset, value)
    path.write_bytes(bytes(raw))


def replace_bytes(path: Path, old: bytes, new: bytes) -> None:
    raw = path.read_bytes()
    assert old in raw
    path.write_bytes(raw.replace(old, new))


class Unseekable(io.RawIOBase):
    """A sink zipfile cannot seek in, so it writes data descriptors."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        self.buffer += chunk
        return len(chunk)
