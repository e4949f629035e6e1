"""Named, versioned rules that explain why a file of an sdist is not as it is in git.

Each rule is a small pure function of one file (its path, its bytes in the sdist, its
bytes at the tagged commit or None when git has no such file) and the release. A rule
explains only what a build backend is known to generate; anything else makes the
release ``inconsistent``. Changing what a rule accepts means a new version.
"""

from __future__ import annotations

import configparser
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

logger = logging.getLogger(__name__)

_MAX_GENERATED_BYTES = 64 * 1024


@dataclass(frozen=True)
class FileCase:
    """One sdist file that is not byte-identical to git."""

    path: str  # relative to the sdist's top folder
    sdist: bytes
    git: bytes | None  # None: git has no such file
    project: str
    version: str
    pyproject: str  # the sdist's pyproject.toml ("" when none)


@dataclass(frozen=True)
class Rule:
    """An explanation: ``name@version``, what it accepts, and the check."""

    name: str
    version: int
    summary: str
    check: Callable[[FileCase], bool]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def _pkg_info(case: FileCase) -> bool:
    return case.path == "PKG-INFO" and case.git is None


def _egg_info(case: FileCase) -> bool:
    parts = PurePosixPath(case.path).parts
    return case.git is None and any(p.endswith(".egg-info") for p in parts[:-1])


def _parse_cfg(data: bytes) -> dict[str, dict[str, str]] | None:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    try:
        parser.read_string(data.decode("utf-8"))
    except (configparser.Error, UnicodeDecodeError):
        return None
    return {s: {k: v.strip() for k, v in parser.items(s)} for s in parser.sections()}


def _setup_cfg_egg_info(case: FileCase) -> bool:
    """setuptools adds (or rewrites) ``[egg_info]`` and re-serializes ``setup.cfg``."""
    if case.path != "setup.cfg":
        return False
    published = _parse_cfg(case.sdist)
    if published is None or "egg_info" not in published:
        return False
    allowed = {"tag_build", "tag_date", "tag_svn_revision", "egg_base"}
    if not set(published["egg_info"]) <= allowed:
        return False
    published.pop("egg_info")
    if case.git is None:
        return not published
    committed = _parse_cfg(case.git)
    if committed is None:
        return False
    committed.pop("egg_info", None)
    return published == committed


_VERSION_FILE = re.compile(
    r"(^|/)(_version\.py|__version__\.py|version\.py|_version\.txt|VERSION)$"
)


def _scm_version_file(case: FileCase) -> bool:
    """A version file setuptools-scm / hatch-vcs / versioningit write, not kept in git."""
    if case.git is not None or not _VERSION_FILE.search(case.path):
        return False
    if len(case.sdist) > _MAX_GENERATED_BYTES:
        return False
    text = case.sdist.decode("utf-8", "replace")
    return case.version in text and any(
        tool in case.pyproject for tool in ("setuptools_scm", "setuptools-scm", "hatch-vcs",
                                             "hatch_vcs", "versioningit", "pdm-backend", "vcs")
    )  # fmt: skip


def _git_archival(case: FileCase) -> bool:
    """``.git_archival.txt``: git archive substitutes ``$Format:...$``, sdists keep it raw."""
    if PurePosixPath(case.path).name != ".git_archival.txt" or case.git is None:
        return False
    return b"$Format:" in case.sdist and len(case.sdist) <= _MAX_GENERATED_BYTES


def _poetry_setup_py(case: FileCase) -> bool:
    """poetry-core writes a ``setup.py`` shim into sdists (``generate-setup-file``)."""
    if case.path != "setup.py" or case.git is not None:
        return False
    text = case.sdist.decode("utf-8", "replace")
    return (
        "poetry" in case.pyproject
        and "setup_kwargs" in text
        and len(case.sdist) <= _MAX_GENERATED_BYTES
    )


RULES: tuple[Rule, ...] = (
    Rule("pkg-info", 1, "PKG-INFO at the top: core metadata written by every backend", _pkg_info),
    Rule("egg-info", 1, "files under *.egg-info/: setuptools' generated metadata", _egg_info),
    Rule(
        "setup-cfg-egg-info",
        1,
        "setup.cfg identical to git's but for the [egg_info] section setuptools adds "
        "(tag_build, tag_date), compared as parsed INI",
        _setup_cfg_egg_info,
    ),
    Rule(
        "scm-version-file",
        1,
        "a version file (_version.py, version.py, VERSION, ...) not in git, holding the "
        "version, in a project using setuptools-scm, hatch-vcs, versioningit or pdm's vcs",
        _scm_version_file,
    ),
    Rule(
        "git-archival",
        1,
        ".git_archival.txt whose $Format:...$ placeholders git archive substitutes",
        _git_archival,
    ),
    Rule(
        "poetry-setup-py", 1, "the setup.py shim poetry-core generates in sdists", _poetry_setup_py
    ),
)


def explain(case: FileCase, rules: tuple[Rule, ...] = RULES) -> Rule | None:
    """The first rule explaining ``case``, or None."""
    return next((rule for rule in rules if rule.check(case)), None)
