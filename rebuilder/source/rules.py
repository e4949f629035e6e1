"""Named, versioned rules that explain a file of an sdist that is not as it is in git.

A rule explains a file only by *reproducing* it: the generated files of an sdist
(``PKG-INFO``, ``<name>.egg-info/*``, the ``[egg_info]`` section setuptools adds to
``setup.cfg``, a version file written by setuptools-scm / hatch-vcs / versioningit,
poetry's ``setup.py`` shim) are compared with the same file of the sdist rebuilt from
the git tree at the tag, in the sandbox, with the backend the release was built with
(:class:`Regeneration`); ``.git_archival.txt`` with the blob git holds for that commit
(before ``export-subst``; the file git archive writes, after it, is compared as any
other file). The file's name only says which rule *may* apply:

* the regenerated file is the same (field by field for core metadata, line by line
  for the other text files, key by key for ``setup.cfg``) -> explained, and the rule
  records what it regenerated;
* it differs -> not explained: ``content`` with the differing fields or lines;
* the backend wrote no such file there -> the rule does not apply (``sdist-only``);
* no regeneration was possible -> ``unexplained`` with why (never accepted by name).

Changing what a rule accepts means a new version.
"""

from __future__ import annotations

import configparser
import email.parser
import email.policy
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath

logger = logging.getLogger(__name__)

_MAX_GENERATED_BYTES = 1024**2
_MAX_SHOWN = 8  # differing fields or lines named per file

#: What setuptools writes into ``<name>.egg-info/``.
EGG_INFO_FILES = frozenset(
    {
        "PKG-INFO",
        "SOURCES.txt",
        "requires.txt",
        "top_level.txt",
        "dependency_links.txt",
        "entry_points.txt",
        "namespace_packages.txt",
        "not-zip-safe",
        "zip-safe",
        "eager_resources.txt",
    }
)
#: Recorded for a file git holds as a symlink (inside the tree) and the sdist as a copy
#: with the same bytes as the link's target.
SYMLINK_COPY_RULE = "git-symlink@1"

_VERSION_FILE = re.compile(
    r"(^|/)(_version\.py|__version__\.py|version\.py|_version\.txt|VERSION)$"
)


@dataclass(frozen=True)
class Regeneration:
    """The generated files the backend wrote when the sdist was rebuilt from git.

    ``files`` maps paths below the rebuilt sdist's top folder to their bytes; ``by``
    says how they were made (backend, clock); ``why`` why nothing was regenerated
    (``files`` empty then).
    """

    files: Mapping[str, bytes] = field(default_factory=dict)
    by: str = ""
    why: str = "no rebuild from git was asked for"

    @property
    def available(self) -> bool:
        return bool(self.by)


NOT_REGENERATED = Regeneration()


@dataclass(frozen=True)
class FileCase:
    """One sdist file that is not byte-identical to git."""

    path: str  # relative to the sdist's top folder
    sdist: bytes
    git: bytes | None  # None: git has no such file (the git archive's bytes otherwise)
    project: str
    version: str
    pyproject: str  # the sdist's pyproject.toml ("" when none)
    regeneration: Regeneration = NOT_REGENERATED
    git_blob: bytes | None = None  # the committed blob, before export-subst (if read)


class Outcome(StrEnum):
    EXPLAINED = "explained"  # reproduced: the same file
    DIFFERS = "differs"  # reproduced: a different file (detail says where)
    UNEXPLAINED = "unexplained"  # could not be reproduced (detail says why)


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    detail: str  # what was reproduced, what differs, or why it could not be


@dataclass(frozen=True)
class Rule:
    """An explanation: ``name@version``, what it reproduces, and the check.

    ``check`` returns None when the rule does not apply to the file.
    """

    name: str
    version: int
    summary: str
    check: Callable[[FileCase], Judgement | None]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def metadata_fields(data: bytes) -> tuple[dict[str, list[str]], str]:
    """Core metadata (``PKG-INFO``): its fields, each with its values, and its body."""
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
    fields: dict[str, list[str]] = {}
    for name, value in message.items():
        fields.setdefault(name.lower(), []).append(str(value).replace("\r\n", "\n"))
    payload = message.get_payload()
    body = payload if isinstance(payload, str) else ""
    return fields, body.replace("\r\n", "\n").rstrip("\n")


def metadata_differences(published: bytes, regenerated: bytes) -> list[str]:
    """The fields of ``published`` core metadata that are not as regenerated."""
    ours, theirs = metadata_fields(published), metadata_fields(regenerated)
    found: list[str] = []
    for name in sorted(ours[0].keys() | theirs[0].keys()):
        a, b = sorted(ours[0].get(name, [])), sorted(theirs[0].get(name, []))
        if a == b:
            continue
        added = [v for v in a if v not in b]
        removed = [v for v in b if v not in a]
        change = [f"+{_short(v)}" for v in added] + [f"-{_short(v)}" for v in removed]
        found.append(f"{name}: {' '.join(change) or 'order or count differs'}")
    if ours[1] != theirs[1]:
        found.append("the description (body) differs")
    return found


def line_differences(published: bytes, regenerated: bytes) -> list[str]:
    """The lines of ``published`` not in ``regenerated`` (+) and back (-), in order."""
    a = published.decode("utf-8", "replace").splitlines()
    b = regenerated.decode("utf-8", "replace").splitlines()
    if a == b:
        return []
    added = [f"+{_short(line)}" for line in a if line not in b]
    removed = [f"-{_short(line)}" for line in b if line not in a]
    return added + removed or ["the lines are in another order"]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_cfg(data: bytes) -> dict[str, dict[str, str]] | None:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    try:
        parser.read_string(data.decode("utf-8"))
    except (configparser.Error, UnicodeDecodeError):
        return None
    return {s: {k: v.strip() for k, v in parser.items(s)} for s in parser.sections()}


def cfg_differences(published: bytes, regenerated: bytes) -> list[str]:
    """The ``section.key`` entries of ``published`` INI that are not as regenerated."""
    a, b = _parse_cfg(published), _parse_cfg(regenerated)
    if a is None or b is None:
        return ["not readable as INI"] if a is None else line_differences(published, regenerated)
    found: list[str] = []
    for section in sorted(a.keys() | b.keys()):
        keys_a, keys_b = a.get(section, {}), b.get(section, {})
        for key in sorted(keys_a.keys() | keys_b.keys()):
            if keys_a.get(key) != keys_b.get(key):
                found.append(f"[{section}] {key}: {_short(keys_a.get(key, '(absent)'))}")
    return found


def _judge(case: FileCase, compare: Callable[[bytes, bytes], list[str]]) -> Judgement | None:
    """Compare ``case`` with its regenerated twin (None: the backend wrote none there)."""
    regen = case.regeneration
    if not regen.available:
        return Judgement(Outcome.UNEXPLAINED, f"not regenerated: {regen.why}")
    theirs = regen.files.get(case.path)
    if theirs is None:
        return None  # the backend does not write this file here: the rule does not apply
    if len(case.sdist) > _MAX_GENERATED_BYTES:
        return Judgement(Outcome.DIFFERS, f"{len(case.sdist)} bytes: too large to compare")
    differences = compare(case.sdist, theirs)
    if not differences:
        return Judgement(Outcome.EXPLAINED, f"the same as regenerated ({regen.by})")
    shown = "; ".join(differences[:_MAX_SHOWN])
    more = len(differences) - _MAX_SHOWN
    suffix = f"; +{more} more" if more > 0 else ""
    return Judgement(Outcome.DIFFERS, f"not as regenerated ({regen.by}): {shown}{suffix}")


def _pkg_info(case: FileCase) -> Judgement | None:
    if case.path != "PKG-INFO" or case.git is not None:
        return None
    return _judge(case, metadata_differences)


def egg_info_folder(path: str, project: str) -> bool:
    """``path`` is a file setuptools writes in ``<name>.egg-info/`` at the top or one down."""
    parts = PurePosixPath(path).parts
    if len(parts) not in (2, 3) or parts[-1] not in EGG_INFO_FILES:
        return False
    folder = parts[-2]
    return folder.endswith(".egg-info") and _normalized(folder[: -len(".egg-info")]) == (
        _normalized(project)
    )


def _egg_info(case: FileCase) -> Judgement | None:
    if case.git is not None or not egg_info_folder(case.path, case.project):
        return None
    if case.path.endswith("PKG-INFO"):
        return _judge(case, metadata_differences)
    return _judge(case, line_differences)


def _setup_cfg_egg_info(case: FileCase) -> Judgement | None:
    """setuptools adds (or rewrites) ``[egg_info]`` and re-serializes ``setup.cfg``."""
    if case.path != "setup.cfg":
        return None
    published = _parse_cfg(case.sdist)
    if published is None or "egg_info" not in published:
        return None  # not what setuptools writes: an ordinary content difference
    return _judge(case, cfg_differences)


def _scm_version_file(case: FileCase) -> Judgement | None:
    """A version file setuptools-scm / hatch-vcs / versioningit write, not kept in git."""
    if case.git is not None or not _VERSION_FILE.search(case.path):
        return None
    return _judge(case, line_differences)


def _git_archival(case: FileCase) -> Judgement | None:
    """``.git_archival.txt``: git archive substitutes ``$Format:...$``; sdists keep git's blob.

    The git archive's bytes (``export-subst`` done by git for this commit) are what
    ``case.git`` holds; an identical file never reaches the rules. The other form an
    honest sdist holds is the committed blob itself, unsubstituted.
    """
    if PurePosixPath(case.path).name != ".git_archival.txt" or case.git is None:
        return None
    if case.git_blob is None:
        return Judgement(Outcome.UNEXPLAINED, "the committed blob could not be read")
    if case.sdist == case.git_blob:
        return Judgement(Outcome.EXPLAINED, "the committed blob, before git's export-subst")
    differences = line_differences(case.sdist, case.git)
    shown = "; ".join(differences[:_MAX_SHOWN])
    return Judgement(
        Outcome.DIFFERS, f"neither the committed blob nor git's export-subst of it: {shown}"
    )


def _poetry_setup_py(case: FileCase) -> Judgement | None:
    """poetry-core writes a ``setup.py`` shim into sdists (``generate-setup-file``)."""
    if case.path != "setup.py" or case.git is not None or "poetry" not in case.pyproject:
        return None
    return _judge(case, line_differences)


RULES: tuple[Rule, ...] = (
    Rule(
        "pkg-info",
        2,
        "PKG-INFO at the top, regenerated by the backend from the tagged tree and compared "
        "field by field",
        _pkg_info,
    ),
    Rule(
        "egg-info",
        2,
        "the files setuptools writes in <name>.egg-info/ (at the top or one folder down, "
        "where the regenerated sdist has them), regenerated and compared field by field "
        "(PKG-INFO) or line by line",
        _egg_info,
    ),
    Rule(
        "setup-cfg-egg-info",
        2,
        "setup.cfg with the [egg_info] section setuptools adds, regenerated and compared "
        "key by key",
        _setup_cfg_egg_info,
    ),
    Rule(
        "scm-version-file",
        2,
        "a version file not in git (_version.py, version.py, VERSION, ...), regenerated by "
        "the backend and its plugins from the tagged tree and compared line by line",
        _scm_version_file,
    ),
    Rule(
        "git-archival",
        2,
        ".git_archival.txt identical to the blob committed at the tag (git archive's "
        "export-subst output is compared as any file)",
        _git_archival,
    ),
    Rule(
        "poetry-setup-py",
        2,
        "the setup.py shim poetry-core writes, regenerated and compared line by line",
        _poetry_setup_py,
    ),
)


def explain(case: FileCase, rules: tuple[Rule, ...] = RULES) -> tuple[Rule, Judgement] | None:
    """The first rule applying to ``case`` and its judgement, or None."""
    for rule in rules:
        judgement = rule.check(case)
        if judgement is not None:
            return rule, judgement
    return None
