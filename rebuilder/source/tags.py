"""Find the tag that names a version: ``v1.2.3``, ``1.2.3``, ``name-1.2.3``, ...

A tag matches when, after one known prefix (nothing, the project's name in any of its
spellings, ``release``, ``rel``, ``version``; then an optional separator ``-``, ``_``,
``/``, ``@`` or ``.`` and an optional ``v``), *the whole rest* parses as a PEP 440 version
equal to the release's version. So ``v1.2.3`` and ``1.2.3`` match ``1.2.3`` while
``1.2.30`` and ``1.2.3rc1`` never do; ``1.2.3.0`` does (PEP 440 calls them equal), as does
``1.2.3`` for a release spelled ``1.2.03`` after normalization.

Tags prefixed with the project's name win over bare ones (a monorepo tags each package).
When the best matches name different commits, nothing is guessed: the result says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

logger = logging.getLogger(__name__)

_GENERIC_PREFIXES = ("release", "rel", "version", "ver", "tag")
_SEPARATORS = ("-", "_", "/", "@", ".", "")
_REF_PREFIX = "refs/tags/"
_MAX_TAG_LENGTH = 200


@dataclass(frozen=True)
class TagMatch:
    """The tag chosen for a version (``tag`` None when there is none)."""

    tag: str | None
    commit: str | None
    candidates: tuple[str, ...] = ()  # every tag that matched, best first
    tried: tuple[str, ...] = ()  # the tag forms looked for (for a person)
    reason: str | None = None  # why none was chosen


def name_spellings(project: str) -> tuple[str, ...]:
    """Spellings of a project name a tag may start with, longest first."""
    canonical = canonicalize_name(project)
    forms = {project.lower(), canonical, canonical.replace("-", "_"), canonical.replace("-", ".")}
    forms |= {canonical.replace("-", "")}
    return tuple(sorted(forms, key=lambda f: (-len(f), f)))


def tag_forms(project: str, version: str) -> tuple[str, ...]:
    """The usual spellings of a tag for ``version``, for the record of what was tried."""
    name = canonicalize_name(project)
    return (
        f"v{version}",
        version,
        f"{name}-{version}",
        f"{name}-v{version}",
        f"{name.replace('-', '_')}_v{version}",
        f"{name}/v{version}",
        f"{name}@{version}",
        f"release-{version}",
        f"release/v{version}",
        f"version-{version}",
    )


def tag_version(tag: str, project: str) -> tuple[Version, bool] | None:
    """(version named by ``tag``, named after the project?), or None if it names none."""
    text = tag.removeprefix(_REF_PREFIX)
    if not text or len(text) > _MAX_TAG_LENGTH:
        return None
    lowered = text.lower()
    prefixes = [(p, True) for p in name_spellings(project)]
    prefixes += [(p, False) for p in _GENERIC_PREFIXES]
    found = _parse_version(lowered)
    if found is not None:
        return found, False
    for prefix, named in prefixes:
        if not lowered.startswith(prefix):
            continue
        rest = lowered[len(prefix) :]
        for sep in _SEPARATORS:
            if sep and not rest.startswith(sep):
                continue
            parsed = _parse_version(rest[len(sep) :])
            if parsed is not None:
                return parsed, named
    return None


_VERSION_START = re.compile(r"v?\d")


def _parse_version(text: str) -> Version | None:
    if not _VERSION_START.match(text):
        return None
    try:
        # the whole remaining text must be the version (PEP 440 allows a leading "v")
        return Version(text)
    except InvalidVersion:
        return None


def match_tag(tags: Mapping[str, str], project: str, version: str) -> TagMatch:
    """The tag of ``tags`` (name -> commit) naming ``version`` of ``project``."""
    tried = tag_forms(project, version)
    try:
        wanted = Version(version)
    except InvalidVersion:
        return TagMatch(None, None, (), tried, f"{version!r} is not a PEP 440 version")
    named: list[str] = []
    bare: list[str] = []
    for tag in tags:
        parsed = tag_version(tag, project)
        if parsed is None or parsed[0] != wanted:
            continue
        (named if parsed[1] else bare).append(tag)
    best = sorted(named, key=_preference) or sorted(bare, key=_preference)
    candidates = tuple(sorted(named, key=_preference) + sorted(bare, key=_preference))
    if not best:
        return TagMatch(
            None,
            None,
            (),
            tried,
            f"no tag among {len(tags)} names version {version}",
        )
    commits = {tags[t] for t in best}
    if len(commits) > 1:
        listing = ", ".join(f"{t} -> {tags[t][:12]}" for t in best)
        return TagMatch(
            None, None, candidates, tried, f"tags for {version} name different commits: {listing}"
        )
    return TagMatch(best[0], tags[best[0]], candidates, tried)


def _preference(tag: str) -> tuple[int, int, str]:
    """Exact spellings first (``v1.2.3``/``1.2.3`` rather than ``1.2.3.0``), then shortest."""
    return (0 if re.search(r"(^|[-_/@v])\d+(\.\d+)*$", tag) else 1, len(tag), tag)
