"""Which CPython the original build ran on, read from traces in the published wheel.

A pure wheel does not say which interpreter built it, but some of its files do:

* setuptools names namespace-package ``.pth`` files after the interpreter:
  ``demo-1.0-py3.9-nspkg.pth``;
* installers and some projects declare versioned console scripts in
  ``entry_points.txt`` (``pip3.10 = ...``, ``tool-3.9 = ...``), written from the
  running interpreter's version;
* the upload time bounds it: a release uploaded before an interpreter existed was not
  built with it.

The sandbox offers a small matrix of interpreters (one per Debian suite, bootstrapped
without a registry); the nearest one to the evidence is chosen, and the choice and its
reason are recorded in the strategy. See ``docs/reproducibility.md``.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True)
class Interpreter:
    """One interpreter of the sandbox matrix."""

    version: str  # "3.11"
    suite: str  # the Debian suite whose python3 it is
    glibc: str  # that suite's glibc, for the platform tags resolution uses
    released: datetime  # the interpreter's first final release

    @property
    def key(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)

    @property
    def python_platform(self) -> str:
        """The ``--python-platform`` of this interpreter's image (x86_64)."""
        return f"x86_64-manylinux_{self.glibc.replace('.', '_')}"


BULLSEYE = Interpreter("3.9", "bullseye", "2.31", datetime(2020, 10, 5, tzinfo=UTC))
BOOKWORM = Interpreter("3.11", "bookworm", "2.36", datetime(2022, 10, 24, tzinfo=UTC))
TRIXIE = Interpreter("3.13", "trixie", "2.41", datetime(2024, 10, 7, tzinfo=UTC))
#: The interpreters the sandbox can run, oldest first.
MATRIX: tuple[Interpreter, ...] = (BULLSEYE, BOOKWORM, TRIXIE)
DEFAULT = BOOKWORM

_NSPKG_RE = re.compile(r"-py(?P<major>[23])\.(?P<minor>\d{1,2})-nspkg\.pth$")
# A console script whose name ends in the interpreter's version: pip3.10, tool-3.9.
_VERSIONED_SCRIPT_RE = re.compile(r"[A-Za-z_][\w.-]*?[-_]?(?P<major>[23])\.(?P<minor>\d{1,2})$")


class NamedEntry(Protocol):
    """What the choice reads of a published zip entry."""

    @property
    def name(self) -> str: ...
    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True)
class InterpreterChoice:
    """The interpreter to build with and why."""

    interpreter: Interpreter
    reason: str
    traced: tuple[int, int] | None = None  # the version the traces name, when they do

    @property
    def note(self) -> str:
        return f"Python {self.interpreter.version}: {self.reason}"


def nspkg_versions(names: Sequence[str]) -> set[tuple[int, int]]:
    """Interpreter versions named by ``*-pyX.Y-nspkg.pth`` entries at the wheel's top."""
    found = set()
    for name in names:
        if "/" in name:
            continue
        match = _NSPKG_RE.search(name)
        if match:
            found.add((int(match["major"]), int(match["minor"])))
    return found


def entry_point_versions(text: str) -> set[tuple[int, int]]:
    """Interpreter versions that end console-script names in ``entry_points.txt``.

    Only a script whose unversioned and major-versioned twins are declared too counts
    (``pip``, ``pip3``, ``pip3.10``): a lone name ending in digits may be anything.
    """
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        parser.read_string(text)
    except configparser.Error:
        return set()
    found = set()
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        names = {key.strip() for key in parser.options(section)}
        for name in names:
            match = _VERSIONED_SCRIPT_RE.fullmatch(name)
            if match is None:
                continue
            stem = name[: match.start("major")]
            bare = stem.rstrip("-_")
            if bare in names and (stem + match["major"] in names or bare + match["major"] in names):
                found.add((int(match["major"]), int(match["minor"])))
    return found


def nearest(version: tuple[int, int], matrix: Sequence[Interpreter] = MATRIX) -> Interpreter:
    """The matrix interpreter closest to ``version`` (the older one on a tie)."""
    return min(
        matrix, key=lambda i: (abs(i.key[1] - version[1]) + 100 * abs(i.key[0] - version[0]), i.key)
    )


def choose_interpreter(
    entries: Sequence[NamedEntry],
    upload_time: datetime | None,
    *,
    matrix: Sequence[Interpreter] = MATRIX,
    default: Interpreter = DEFAULT,
) -> InterpreterChoice:
    """The interpreter the published wheel's traces point to.

    Traces inside the wheel win (namespace ``.pth`` names, then versioned scripts).
    Without them, an upload from before the default interpreter was released gets the
    newest matrix interpreter released before the upload (or the oldest one, when the
    upload predates them all): it cannot have been built by a later one. Otherwise the
    default stands.
    """
    names = [e.name for e in entries]
    traced = nspkg_versions(names)
    how = "namespace .pth files name"
    if not traced:
        for entry in entries:
            folder, _, rest = entry.name.partition("/")
            if rest == "entry_points.txt" and folder.endswith(".dist-info"):
                traced = entry_point_versions(entry.data.decode("utf-8", errors="replace"))
                how = "versioned console scripts name"
                break
    if len(traced) == 1:
        version = next(iter(traced))
        chosen = nearest(version, matrix)
        label = f"{version[0]}.{version[1]}"
        exact = "" if chosen.key == version else " (the nearest in the sandbox matrix)"
        return InterpreterChoice(chosen, f"the wheel's {how} Python {label}{exact}", version)
    if len(traced) > 1:
        listed = ", ".join(f"{a}.{b}" for a, b in sorted(traced))
        return InterpreterChoice(
            default, f"the wheel's {how} several interpreters ({listed}): default kept"
        )
    if upload_time is not None and upload_time < default.released:
        earlier = [i for i in matrix if i.released <= upload_time]
        chosen = max(earlier, key=lambda i: i.key) if earlier else min(matrix, key=lambda i: i.key)
        if chosen != default:
            return InterpreterChoice(
                chosen,
                f"uploaded {upload_time.date().isoformat()}, before Python "
                f"{default.version} was released",
            )
    return InterpreterChoice(default, "no trace of the original interpreter: the default")


def older_than(
    interpreter: Interpreter, matrix: Sequence[Interpreter] = MATRIX
) -> list[Interpreter]:
    """The matrix interpreters older than ``interpreter``, newest first."""
    return sorted((i for i in matrix if i.key < interpreter.key), key=lambda i: i.key, reverse=True)


def by_version(version: str, matrix: Sequence[Interpreter] = MATRIX) -> Interpreter | None:
    """The matrix interpreter of ``version`` ("3.9"), if any."""
    return next((i for i in matrix if i.version == version), None)
