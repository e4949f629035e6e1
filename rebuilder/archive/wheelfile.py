"""What a wheel says about itself: its ``.dist-info`` folder, ``WHEEL`` and ``METADATA``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rebuilder.archive.zipread import ZipArchive
from rebuilder.errors import ArchiveError

logger = logging.getLogger(__name__)

DIST_INFO_SUFFIX = ".dist-info"


@dataclass(frozen=True)
class WheelInfo:
    """The fields of a wheel's ``WHEEL`` and ``METADATA`` files the rebuilder needs.

    ``generator`` is the ``Generator:`` value exactly as written (without surrounding
    whitespace), or None when the line is missing.
    """

    dist_info: str
    name: str
    version: str
    wheel_version: str
    generator: str | None
    root_is_purelib: bool
    tags: tuple[str, ...]


def read_wheel_info(archive: ZipArchive) -> WheelInfo:
    """Parse the one ``*.dist-info`` folder of ``archive``; ArchiveError if it is unusable."""
    dist_info = find_dist_info(archive)
    wheel = parse_headers(_member_text(archive, f"{dist_info}/WHEEL"), "WHEEL")
    metadata = parse_headers(_member_text(archive, f"{dist_info}/METADATA"), "METADATA")
    purelib = _one(wheel, "Root-Is-Purelib", "WHEEL").lower()
    if purelib not in {"true", "false"}:
        raise ArchiveError(f"WHEEL: Root-Is-Purelib is {purelib!r}, not true or false")
    tags = tuple(value for key, value in wheel if key == "tag")
    if not tags:
        raise ArchiveError("WHEEL: no Tag line")
    generators = [value for key, value in wheel if key == "generator"]
    return WheelInfo(
        dist_info=dist_info,
        name=_one(metadata, "Name", "METADATA"),
        version=_one(metadata, "Version", "METADATA"),
        wheel_version=_one(wheel, "Wheel-Version", "WHEEL"),
        generator=generators[0] if generators else None,
        root_is_purelib=purelib == "true",
        tags=tags,
    )


def find_dist_info(archive: ZipArchive) -> str:
    """The name of the top-level ``*.dist-info`` folder holding ``WHEEL`` and ``METADATA``."""
    names = set(archive.names())
    folders = {
        name.split("/", 1)[0]
        for name in names
        if "/" in name and name.split("/", 1)[0].endswith(DIST_INFO_SUFFIX)
    }
    candidates = sorted(f for f in folders if f"{f}/WHEEL" in names and f"{f}/METADATA" in names)
    if len(candidates) != 1:
        found = ", ".join(sorted(folders)) or "none"
        raise ArchiveError(
            f"expected one .dist-info folder with WHEEL and METADATA, found: {found}"
        )
    return candidates[0]


def parse_headers(text: str, what: str) -> list[tuple[str, str]]:
    """``Key: value`` lines up to the first blank line, keys lower-cased, in order.

    Continuation lines (starting with a space or tab) extend the previous value, as in
    e-mail headers. Anything else that is not a header line is refused.
    """
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            break
        if line[0] in " \t":
            if not headers:
                raise ArchiveError(f"{what}: line {number} continues no header")
            key, value = headers[-1]
            headers[-1] = (key, f"{value}\n{line.strip()}")
            continue
        key, colon, value = line.partition(":")
        if not colon or not key.strip() or key != key.strip() or " " in key:
            raise ArchiveError(f"{what}: line {number} is not a header: {line[:80]!r}")
        headers.append((key.lower(), value.strip()))
    return headers


def _one(headers: list[tuple[str, str]], key: str, what: str) -> str:
    values = [value for k, value in headers if k == key.lower()]
    if len(values) != 1 or not values[0] or "\n" in values[0]:
        state = "missing" if not values else "not one single-line value"
        raise ArchiveError(f"{what}: {key} is {state}")
    return values[0]


def _member_text(archive: ZipArchive, name: str) -> str:
    entry = archive.get(name)
    if entry is None:
        raise ArchiveError(f"{name} is missing")
    try:
        return entry.data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(f"{name} is not UTF-8 text") from None
