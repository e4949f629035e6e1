"""Pinned dependencies from requirements files and lock files.

Four formats: ``requirements.txt`` (``name==version`` with optional ``--hash``),
``uv.lock``, ``pylock.toml`` (PEP 751) and ``poetry.lock``. Each becomes a list of
:class:`Pin`: a project, an exact version and the files the lock vouches for (with
their sha256, and their filename where the format names it). What cannot be pinned to
an index release (a VCS or path dependency, an unpinned requirement) is kept as a
:class:`Skipped` entry, so a report can say why it was left out instead of hiding it.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from rebuilder.campaigns import LockFileError

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_LOCK_BYTES = 32 * 1024 * 1024


class LockFormat(StrEnum):
    REQUIREMENTS = "requirements.txt"
    UV = "uv.lock"
    PYLOCK = "pylock.toml"
    POETRY = "poetry.lock"


@dataclass(frozen=True)
class LockedFile:
    """A file the lock accepts: its sha256, and its name when the format gives one."""

    sha256: str
    filename: str | None = None


@dataclass(frozen=True)
class Pin:
    """One pinned release and the files the lock vouches for (empty: no hashes)."""

    project: str  # normalized
    version: str
    files: tuple[LockedFile, ...] = ()
    line: str = ""  # where it came from, for messages

    @property
    def spec(self) -> str:
        return f"{self.project}=={self.version}"


@dataclass(frozen=True)
class Skipped:
    """An entry of the lock that names no index release, and why."""

    entry: str
    reason: str


@dataclass(frozen=True)
class LockContents:
    format: LockFormat
    pins: tuple[Pin, ...]
    skipped: tuple[Skipped, ...] = ()


def detect_format(name: str, text: str) -> LockFormat:
    """The format of a lock, from its file name first, else from its content."""
    base = PurePosixPath(name.replace("\\", "/")).name.lower()
    by_name = {"uv.lock": LockFormat.UV, "poetry.lock": LockFormat.POETRY}
    if base in by_name:
        return by_name[base]
    if base == "pylock.toml" or re.fullmatch(r"pylock\.[^.]+\.toml", base):
        return LockFormat.PYLOCK
    if re.search(r"^lock-version\s*=", text, re.MULTILINE):
        return LockFormat.PYLOCK
    if "[[package]]" in text:
        if re.search(r"^\s*(content-hash|python-versions)\s*=", text, re.MULTILINE) or (
            "[metadata]" in text and "files = [" in text
        ):
            return LockFormat.POETRY
        return LockFormat.UV
    return LockFormat.REQUIREMENTS  # *.txt, *.in and anything else


def parse_lock(name: str, text: str, fmt: LockFormat | None = None) -> LockContents:
    """Read a requirements or lock file; LockFileError when it is not one."""
    if len(text) > MAX_LOCK_BYTES:
        raise LockFileError(f"{name}: larger than {MAX_LOCK_BYTES} bytes")
    fmt = fmt or detect_format(name, text)
    if fmt is LockFormat.REQUIREMENTS:
        return parse_requirements(text, name=name)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockFileError(f"{name}: not valid TOML ({exc})") from None
    if fmt is LockFormat.UV:
        return _parse_uv(data, name)
    if fmt is LockFormat.PYLOCK:
        return _parse_pylock(data, name)
    return _parse_poetry(data, name)


# -- requirements.txt ----------------------------------------------------------------


def _logical_lines(text: str) -> Iterable[str]:
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def parse_requirements(text: str, *, name: str = "requirements.txt") -> LockContents:
    """``name==version [; marker] [--hash=sha256:...]`` lines; options and others skipped."""
    pins: list[Pin] = []
    skipped: list[Skipped] = []
    for line in _logical_lines(text):
        stripped = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not stripped:
            continue
        if stripped.startswith("-"):
            skipped.append(Skipped(stripped, "an option line (includes are not followed)"))
            continue
        parts = stripped.split()
        hashes: list[str] = []
        words: list[str] = []
        for word in parts:
            if word.startswith("--hash="):
                algorithm, _, digest = word[len("--hash=") :].partition(":")
                if algorithm == "sha256" and _SHA256.match(digest.lower()):
                    hashes.append(digest.lower())
            elif word.startswith("--"):
                continue
            else:
                words.append(word)
        requirement_text = " ".join(words)
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement:
            skipped.append(Skipped(stripped, "not a requirement this reader understands"))
            continue
        pinned = _exact_version(requirement)
        if requirement.url or pinned is None:
            skipped.append(Skipped(requirement_text, "not pinned to one version (==)"))
            continue
        pins.append(
            Pin(
                project=canonicalize_name(requirement.name),
                version=pinned,
                files=tuple(LockedFile(h) for h in dict.fromkeys(hashes)),
                line=requirement_text,
            )
        )
    logger.debug("%s: %s pins, %s skipped", name, len(pins), len(skipped))
    return LockContents(LockFormat.REQUIREMENTS, tuple(pins), tuple(skipped))


def _exact_version(requirement: Requirement) -> str | None:
    specs = list(requirement.specifier)
    if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
        return None
    return _valid_version(specs[0].version)


def _valid_version(text: str) -> str | None:
    try:
        Version(text)
    except InvalidVersion:
        return None
    return text


# -- TOML locks ----------------------------------------------------------------------


def _filename_from_url(url: str) -> str | None:
    path = urlsplit(url).path
    name = unquote(path.rsplit("/", 1)[-1]) if path else ""
    return name or None


def _sha256_of(value: object) -> str | None:
    """``"sha256:abc..."`` (uv, poetry) or ``{"sha256": "abc..."}`` (pylock)."""
    digest: object = None
    if isinstance(value, str):
        algorithm, _, digest = value.partition(":")
        if algorithm != "sha256":
            return None
    elif isinstance(value, Mapping):
        digest = value.get("sha256")
    if isinstance(digest, str) and _SHA256.match(digest.lower()):
        return digest.lower()
    return None


def _entries(data: Mapping[str, Any], key: str, name: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise LockFileError(f"{name}: [[{key}]] is not a list of tables")
    return value


def _name_version(entry: Mapping[str, Any]) -> tuple[str, str | None] | None:
    name = entry.get("name")
    version = entry.get("version")
    if not isinstance(name, str) or not name:
        return None
    return canonicalize_name(name), version if isinstance(version, str) else None


def _locked(artifact: object, *, name_key: str | None, hash_key: str) -> LockedFile | None:
    if not isinstance(artifact, Mapping):
        return None
    digest = _sha256_of(artifact.get(hash_key))
    if digest is None:
        return None
    filename = artifact.get(name_key) if name_key else None
    if not isinstance(filename, str) or not filename:
        url = artifact.get("url")
        filename = _filename_from_url(url) if isinstance(url, str) else None
    return LockedFile(digest, filename)


def _parse_uv(data: Mapping[str, Any], name: str) -> LockContents:
    pins: list[Pin] = []
    skipped: list[Skipped] = []
    for entry in _entries(data, "package", name):
        found = _name_version(entry)
        if found is None:
            continue
        project, version = found
        source = entry.get("source", {})
        if not isinstance(source, Mapping) or "registry" not in source:
            kind = next(iter(source), "unknown") if isinstance(source, Mapping) else "unknown"
            skipped.append(Skipped(project, f"not from an index (source: {kind})"))
            continue
        if version is None or _valid_version(version) is None:
            skipped.append(Skipped(project, "no valid version"))
            continue
        artifacts: list[object] = [entry.get("sdist"), *(entry.get("wheels") or [])]
        files = [_locked(a, name_key=None, hash_key="hash") for a in artifacts]
        pins.append(Pin(project, version, tuple(f for f in files if f), f"{project}=={version}"))
    return LockContents(LockFormat.UV, tuple(pins), tuple(skipped))


def _parse_pylock(data: Mapping[str, Any], name: str) -> LockContents:
    if "lock-version" not in data:
        raise LockFileError(f"{name}: no lock-version (not a PEP 751 lock file)")
    pins: list[Pin] = []
    skipped: list[Skipped] = []
    for entry in _entries(data, "packages", name):
        found = _name_version(entry)
        if found is None:
            continue
        project, version = found
        for other in ("vcs", "directory", "archive"):
            if other in entry:
                skipped.append(Skipped(project, f"not from an index ({other})"))
                break
        else:
            if version is None or _valid_version(version) is None:
                skipped.append(Skipped(project, "no valid version"))
                continue
            artifacts: list[object] = [entry.get("sdist"), *(entry.get("wheels") or [])]
            files = [_locked(a, name_key="name", hash_key="hashes") for a in artifacts]
            pins.append(
                Pin(project, version, tuple(f for f in files if f), f"{project}=={version}")
            )
    return LockContents(LockFormat.PYLOCK, tuple(pins), tuple(skipped))


def _parse_poetry(data: Mapping[str, Any], name: str) -> LockContents:
    pins: list[Pin] = []
    skipped: list[Skipped] = []
    legacy = data.get("metadata", {}).get("files", {}) if isinstance(data, Mapping) else {}
    for entry in _entries(data, "package", name):
        found = _name_version(entry)
        if found is None:
            continue
        project, version = found
        source = entry.get("source")
        if isinstance(source, Mapping) and source.get("type") not in (None, "legacy"):
            skipped.append(Skipped(project, f"not from an index (source: {source.get('type')})"))
            continue
        if version is None or _valid_version(version) is None:
            skipped.append(Skipped(project, "no valid version"))
            continue
        raw_files = entry.get("files")
        if raw_files is None and isinstance(legacy, Mapping):
            raw_files = legacy.get(str(entry.get("name")), legacy.get(project))
        files = [_locked(a, name_key="file", hash_key="hash") for a in raw_files or []]
        pins.append(Pin(project, version, tuple(f for f in files if f), f"{project}=={version}"))
    return LockContents(LockFormat.POETRY, tuple(pins), tuple(skipped))
