"""Release specifications as users type them: ``name==version`` or a ``pkg:pypi`` purl."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from rebuilder.errors import UsageError

_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@dataclass(frozen=True)
class ReleaseSpec:
    """A project and, unless the latest is wanted, a version."""

    project: str  # normalized (PEP 503)
    version: str | None

    def __str__(self) -> str:
        return f"{self.project}=={self.version}" if self.version else self.project


def parse_spec(text: str) -> ReleaseSpec:
    """Parse ``attrs==26.1.0``, ``pkg:pypi/attrs@26.1.0`` or a bare ``attrs`` (latest)."""
    raw = text.strip()
    if raw.startswith("pkg:"):
        match = re.fullmatch(r"pkg:pypi/([^@?#]+)(?:@([^?#]+))?(?:[?#].*)?", raw)
        if match is None:
            raise UsageError(f"not a PyPI package URL: {text!r} (expected pkg:pypi/NAME@VERSION)")
        name, version = unquote(match.group(1)), match.group(2)
        version = unquote(version) if version else None
    elif "==" in raw:
        name, _, version = raw.partition("==")
        name, version = name.strip(), version.strip()
    else:
        name, version = raw, None
    if not _NAME.match(name):
        raise UsageError(f"not a valid project name: {name!r}")
    if version is not None:
        try:
            Version(version)
        except InvalidVersion:
            raise UsageError(f"not a valid version: {version!r} in {text!r}") from None
    return ReleaseSpec(canonicalize_name(name), version)
