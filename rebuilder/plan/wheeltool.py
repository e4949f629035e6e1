"""Which ``wheel`` the original build had installed, read from the published wheel.

The ``Generator`` line names the backend, but setuptools hands part of the work to
whatever ``wheel`` the build environment holds: from 71.0 on, its ``bdist_wheel``
imports ``wheel.wheelfile.WheelFile`` (and, up to 75.6, ``wheel.metadata``) from an
installed ``wheel`` first, and from its own vendored copy only when none is installed.
An isolated build of a recent release has no ``wheel`` installed, so the vendored copy
writes; a maintainer's environment with an older ``wheel`` installed writes what that
version writes. Two traces of older ``wheel`` versions show in the archive:

* ``wheel`` before 0.41.1 wrote requirements in the legacy parenthesised form
  (``Requires-Dist: name (>=1.0)``); later versions write PEP 508 (``name>=1.0``).
* ``wheel`` before 0.40 gave entries it wrote from memory (``RECORD``) the attributes
  ``0o664 << 16``, with no file type bits; later versions add ``S_IFREG``.

When a trace is there, the rebuild installs the newest ``wheel`` below the bound it
sets, resolved as of the upload time like every other build requirement.
"""

from __future__ import annotations

import logging
import re
import stat
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from rebuilder.plan.strategy import BackendPin

logger = logging.getLogger(__name__)

#: setuptools from this release on takes ``wheel.wheelfile`` from the environment.
_IMPORTS_WHEELFILE = Version("71.0")
#: ... and up to (not including) this one ``wheel.metadata`` too.
_IMPORTS_METADATA_UNTIL = Version("75.6")
#: The first ``wheel`` release writing PEP 508 requirements (no parentheses).
WHEEL_PEP508_REQUIRES = "0.41.1"
#: The first ``wheel`` release giving in-memory entries the regular-file type bits.
WHEEL_TYPED_ENTRIES = "0.40"
_UNTYPED_RECORD_ATTR = 0o664 << 16

# ``Requires-Dist: name[extras] (specifiers) ; marker``: a name, optional extras, then
# a parenthesised specifier list right after it.
_LEGACY_REQUIRES_DIST = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\])?\s*\(\s*[<>=!~][^)]*\)\s*(?:;.*)?$"
)
_PEP508_SPECIFIED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\])?\s*[<>=!~]")


def requires_dist(metadata_text: str) -> list[str]:
    """The ``Requires-Dist`` values of a ``METADATA`` document's header."""
    values = []
    for line in metadata_text.splitlines():
        if not line.strip():
            break  # the body (long description) starts here
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == "requires-dist":
            values.append(value.strip())
    return values


def legacy_requires_dist(metadata_text: str) -> bool | None:
    """True when versioned requirements use the ``name (spec)`` form, False for PEP 508.

    None when no requirement carries a version specifier, so nothing can be told.
    """
    legacy = pep508 = 0
    for value in requires_dist(metadata_text):
        if _LEGACY_REQUIRES_DIST.match(value):
            legacy += 1
        elif _PEP508_SPECIFIED.match(value):
            pep508 += 1
    if not legacy and not pep508:
        return None
    return legacy > 0 and pep508 == 0


def untyped_record(record_external_attr: int | None) -> bool:
    """True when ``RECORD`` carries ``0o664 << 16`` with no file type (``wheel`` < 0.40)."""
    if record_external_attr is None:
        return False
    return record_external_attr == _UNTYPED_RECORD_ATTR and not stat.S_IFMT(
        record_external_attr >> 16
    )


@dataclass(frozen=True)
class WheelToolTrace:
    """The ``wheel`` the original build had installed, and the evidence for it."""

    requirement: str  # e.g. "wheel<0.40"
    evidence: tuple[str, ...]

    @property
    def note(self) -> str:
        return f"an installed {self.requirement}: " + "; ".join(self.evidence)


def installed_wheel(
    pin: BackendPin, metadata_text: str | None, record_external_attr: int | None
) -> WheelToolTrace | None:
    """The ``wheel`` the published wheel shows its build had installed, if any.

    Only setuptools versions that take ``wheel`` modules from the environment
    qualify; for every other backend the Generator pin alone decides.
    """
    if pin.distribution != "setuptools" or pin.version is None:
        return None
    try:
        version = Version(pin.version)
    except InvalidVersion:
        return None
    if version < _IMPORTS_WHEELFILE:
        return None
    bounds: list[tuple[str, str]] = []
    if untyped_record(record_external_attr):
        bounds.append((WHEEL_TYPED_ENTRIES, "RECORD has attributes 0o664 with no file type"))
    if (
        version < _IMPORTS_METADATA_UNTIL
        and metadata_text is not None
        and legacy_requires_dist(metadata_text)
    ):
        bounds.append((WHEEL_PEP508_REQUIRES, "METADATA uses the legacy Requires-Dist form"))
    if not bounds:
        return None
    bound = min((b for b, _ in bounds), key=Version)
    trace = WheelToolTrace(f"wheel<{bound}", tuple(f"{why} (wheel<{b})" for b, why in bounds))
    logger.info("%s: %s", pin.generator, trace.note)
    return trace
