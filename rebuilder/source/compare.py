"""Judge an sdist against ``git archive`` of the commit it claims to come from.

Every regular file of the (safely extracted) sdist is either byte-identical to the file
at the same path in the commit's tree, or explained by a rule of
:mod:`rebuilder.source.rules`, or reported: ``sdist-only`` (git has no such file) or
``content`` (it differs), with a unified diff. Files only in git are listed (usually
fine: excluded by the build configuration). The sdist may come from a folder of the
repository (a monorepo): the folder holding a build configuration that shares the most
identical files with the sdist is used.

The git tar is read as a stream (never extracted): symlinks are recorded, never
followed; a symlink to a file of the tree stands for that file (sdists hold copies).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import posixpath
import stat
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rebuilder.archive.limits import DEFAULT_LIMITS, ArchiveLimits, member_parts
from rebuilder.errors import ArchiveError
from rebuilder.source.errors import SourceLimitError
from rebuilder.source.result import DifferingFile, DiffKind, ExplainedFile, SourceVerdict
from rebuilder.source.rules import RULES, FileCase, Rule, explain

logger = logging.getLogger(__name__)

_KEEP_BYTES = 2 * 1024**2  # git files kept in memory (for rules and diffs) up to this size
_DIFF_BYTES = 256 * 1024  # files larger than this get no unified diff
_DIFF_LINES = 4000  # a diff is cut after this many lines
_BUILD_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


@dataclass(frozen=True)
class GitFile:
    sha256: str
    data: bytes | None  # None when larger than _KEEP_BYTES
    link: str | None = None  # symlink target, for symlinks


@dataclass(frozen=True)
class TreeComparison:
    verdict: SourceVerdict
    subdir: str
    explained: tuple[ExplainedFile, ...]
    differing: tuple[DifferingFile, ...]
    repo_only: tuple[str, ...]
    diff: str  # unified diffs of the differing files (may be cut)


def read_git_tar(path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> dict[str, GitFile]:
    """The files of a ``git archive`` tar (below its one prefix folder), by path."""
    files: dict[str, GitFile] = {}
    links: dict[str, str] = {}
    total = 0
    try:
        with tarfile.open(path, "r:") as tar:
            for count, info in enumerate(tar):
                if count > limits.max_entries:
                    raise SourceLimitError(f"the tree has over {limits.max_entries} entries")
                if info.type == tarfile.XGLTYPE or info.isdir():
                    continue
                parts = member_parts(info.name, limits, lenient=True)[1:]  # drop the prefix
                if not parts:
                    continue
                name = "/".join(parts)
                if info.issym():
                    links[name] = info.linkname
                    continue
                if not info.isfile():
                    continue
                total += info.size
                if info.size > limits.max_member_size or total > limits.max_total_size:
                    raise SourceLimitError(f"{name}: the tree is over the size limits")
                files[name] = _read_member(tar, info)
    except (tarfile.TarError, OSError) as exc:
        raise SourceLimitError(f"the git archive cannot be read: {exc}") from None
    except ArchiveError as exc:
        raise SourceLimitError(f"the git tree holds a hostile name: {exc.diagnostics()}") from None
    for name, target in links.items():
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        pointed = files.get(resolved)
        if pointed is not None and not target.startswith("/") and pointed.link is None:
            files[name] = GitFile(pointed.sha256, pointed.data, target)
        else:
            body = f"symlink -> {target}".encode()
            files[name] = GitFile(hashlib.sha256(body).hexdigest(), body, target)
    return files


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo) -> GitFile:
    stream = tar.extractfile(info)
    digest = hashlib.sha256()
    kept = bytearray()
    while stream is not None and (chunk := stream.read(1024**2)):
        digest.update(chunk)
        if info.size <= _KEEP_BYTES:
            kept += chunk
    return GitFile(digest.hexdigest(), bytes(kept) if info.size <= _KEEP_BYTES else None)


def sdist_files(root: Path) -> dict[str, Path]:
    """The regular files of an extracted sdist tree, by path relative to ``root``."""
    found: dict[str, Path] = {}
    for top, _dirs, names in os.walk(root):
        for name in names:
            path = Path(top, name)
            if stat.S_ISREG(path.lstat().st_mode):
                found[path.relative_to(root).as_posix()] = path
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024**2):
            digest.update(chunk)
    return digest.hexdigest()


def choose_subdir(sdist: Mapping[str, str], git: Mapping[str, GitFile]) -> str:
    """The repository folder the sdist was made from (sdist paths -> sha256)."""
    folders = {""}
    for name in git:
        folder, _, base = name.rpartition("/")
        if base in _BUILD_FILES and folder:
            folders.add(folder + "/")
    best, best_score = "", -1
    for folder in sorted(folders, key=lambda f: (f.count("/"), f)):
        score = sum(
            1
            for path, digest in sdist.items()
            if (g := git.get(folder + path)) is not None and g.sha256 == digest
        )
        if score > best_score:
            best, best_score = folder, score
    return best.rstrip("/")


def compare_tree(
    sdist_root: Path,
    git: Mapping[str, GitFile],
    *,
    project: str,
    version: str,
    rules: tuple[Rule, ...] = RULES,
) -> TreeComparison:
    """Judge the extracted sdist at ``sdist_root`` against the commit's files ``git``."""
    paths = sdist_files(sdist_root)
    digests = {p: _sha256(f) for p, f in paths.items()}
    subdir = choose_subdir(digests, git)
    prefix = f"{subdir}/" if subdir else ""
    pyproject_path = paths.get("pyproject.toml")
    pyproject = (
        pyproject_path.read_text(encoding="utf-8", errors="replace")[: 1024**2]
        if pyproject_path
        else ""
    )
    explained: list[ExplainedFile] = []
    differing: list[DifferingFile] = []
    diffs: list[str] = []
    for path in sorted(paths):
        theirs = git.get(prefix + path)
        if theirs is not None and theirs.sha256 == digests[path]:
            continue
        ours = paths[path].read_bytes()
        case = FileCase(
            path, ours, None if theirs is None else theirs.data or b"", project, version, pyproject
        )
        rule = explain(case, rules)
        if rule is not None:
            explained.append(ExplainedFile(path, str(rule)))
            continue
        kind = DiffKind.SDIST_ONLY if theirs is None else DiffKind.CONTENT
        differing.append(DifferingFile(path, kind))
        diffs.append(unified_diff(path, theirs, ours))
    in_sdist = {prefix + p for p in paths}
    repo_only = tuple(sorted(n for n in git if n.startswith(prefix) and n not in in_sdist))
    diff = "".join(diffs)
    lines = diff.splitlines(keepends=True)
    if len(lines) > _DIFF_LINES:
        diff = "".join(lines[:_DIFF_LINES]) + f"[... {len(lines) - _DIFF_LINES} lines cut ...]\n"
    verdict = SourceVerdict.INCONSISTENT if differing else SourceVerdict.CONSISTENT
    return TreeComparison(verdict, subdir, tuple(explained), tuple(differing), repo_only, diff)


def unified_diff(path: str, theirs: GitFile | None, ours: bytes) -> str:
    """``git`` -> ``sdist`` diff of one file (a note instead for binary or large files)."""
    before = b"" if theirs is None else theirs.data
    header_a = "/dev/null" if theirs is None else f"git/{path}"
    if before is None or len(before) > _DIFF_BYTES or len(ours) > _DIFF_BYTES:
        return f"--- {header_a}\n+++ sdist/{path}\n(too large for a text diff)\n"
    if b"\0" in before or b"\0" in ours:
        return f"--- {header_a}\n+++ sdist/{path}\n(binary files differ)\n"
    a = before.decode("utf-8", "replace").splitlines(keepends=True)
    b = ours.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, fromfile=header_a, tofile=f"sdist/{path}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
