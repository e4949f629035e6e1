"""The oldest release of a build backend that still runs on the sandbox's interpreter.

A build requirement is resolved as of the wheel's upload time, to get what the
maintainer had. But the interpreters of the sandbox matrix are all newer than some
backends of that time: setuptools before 41.1.0 reads ``html.parser.HTMLParser().unescape``
when it is imported, a method Python 3.9 removed, so no build can even start under 3.9 or
later. Such a release was built with an interpreter the matrix lacks (3.8 or older).

Then the nearest backend that runs is the best stand-in: the floor release is pinned
exactly, exempt from the upload-time cutoff for that one distribution (everything else
still resolved as of the upload), and the strategy says so. Whether the stand-in writes
the same bytes is for the comparison to tell: a floor never explains a difference.

Each floor is a fact checked against the backend's own releases (importing each under
the interpreter), not a guess from the project being rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from rebuilder.index.model import BuildRequirement, ResolvedPin, Resolver


@dataclass(frozen=True)
class BackendFloor:
    """From interpreter ``python`` on, ``distribution`` runs only from ``version`` on."""

    distribution: str
    version: str
    python: tuple[int, int]
    why: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    def note(self, resolved: str | None, python_version: str) -> str:
        """Why the floor was pinned: ``resolved`` is what the upload time gave (None: the
        build requirements did not resolve as of then)."""
        had = (
            f"{self.distribution} {resolved} as of the upload time cannot run on Python "
            f"{python_version} ({self.why})"
            if resolved
            else f"the build requirements did not resolve as of the upload time, and "
            f"{self.distribution} of that time cannot run on Python {python_version} "
            f"({self.why})"
        )
        return (
            f"{had}: the oldest release that runs, {self.version}, pinned instead (released "
            "after the upload; an interpreter old enough is not in the sandbox matrix)"
        )


#: Checked by importing each release under CPython 3.9 and 3.11: 41.0.1 and older fail
#: with ``AttributeError: 'HTMLParser' object has no attribute 'unescape'``; 41.1.0 runs.
FLOORS: tuple[BackendFloor, ...] = (
    BackendFloor(
        "setuptools",
        "41.1.0",
        (3, 9),
        "setuptools before 41.1.0 calls HTMLParser.unescape, removed in Python 3.9",
    ),
)


def _key(python_version: str) -> tuple[int, int] | None:
    try:
        major, minor = python_version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def _names(requirements: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for text in requirements:
        try:
            found.add(canonicalize_name(Requirement(text).name))
        except InvalidRequirement:
            continue
    return found


def floor_for(
    requirements: Sequence[str], python_version: str, floors: Sequence[BackendFloor] = FLOORS
) -> BackendFloor | None:
    """The floor of a backend among ``requirements`` that applies on ``python_version``."""
    key = _key(python_version)
    if key is None:
        return None
    names = _names(requirements)
    for floor in floors:
        if key >= floor.python and canonicalize_name(floor.distribution) in names:
            return floor
    return None


def below(floor: BackendFloor, resolved: Sequence[BuildRequirement]) -> str | None:
    """The version of the floor's distribution in ``resolved`` when it is below the floor."""
    for pin in resolved:
        if canonicalize_name(pin.name) != canonicalize_name(floor.distribution):
            continue
        try:
            return pin.version if Version(pin.version) < Version(floor.version) else None
        except InvalidVersion:
            return None
    return None


@dataclass(frozen=True)
class FlooredResolver:
    """A resolver that pins ``floor`` exactly, exempt from the upload-time cutoff."""

    inner: Resolver
    floor: BackendFloor

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        wanted = [*requirements, self.floor.requirement]
        return self.inner.resolve(
            wanted,
            as_of=as_of,
            python_version=python_version,
            beyond_as_of=(*beyond_as_of, self.floor.distribution),
        )
