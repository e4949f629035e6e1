"""Judge an sdist against ``git archive`` of the commit it claims to come from.

Every regular file of the (safely extracted) sdist is either byte-identical to the file
at the same path in the commit's tree, or explained by a rule of
:mod:`rebuilder.source.rules`, or reported: ``sdist-only`` (git has no such file) or
``content`` (it differs), with a unified diff. Files only in git are listed (usually
fine: excluded by the build configuration). The sdist may come from a folder of the
repository (a monorepo): the folder holding a build configuration that shares the most
identical files with the sdist is used. Generated files are judged by the rules against
their regenerated twins (:class:`~rebuilder.source.rules.Regeneration`): ``content``
with the differing fields when they differ, ``unexplained`` with why when they could not
be regenerated.

The git tar is read as a stream (never extracted): symlinks are recorded, never
followed; a symlink to a file or a folder of the tree stands for that file or for every
file below that folder (sdists hold copies: explained as ``git-symlink@1`` when the bytes
are the same); a symlink out of the tree stands for itself (its target, as text).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rebuilder.archive.limits import DEFAULT_LIMITS, ArchiveLimits, member_parts
from rebuilder.errors import ArchiveError
from rebuilder.source.errors import SourceLimitError
from rebuilder.source.result import DifferingFile, DiffKind, ExplainedFile, SourceVerdict
from rebuilder.source.rules import (
    NOT_REGENERATED,
    RULES,
    SYMLINK_COPY_RULE,
    FileCase,
    Outcome,
    Regeneration,
    Rule,
    explain,
)

logger = logging.getLogger(__name__)

_KEEP_BYTES = 2 * 1024**2  # git files kept in memory (for rules and diffs) up to this size
_DIFF_BYTES = 256 * 1024  # files larger than this get no unified diff
_DIFF_LINES = 4000  # a diff is cut after this many lines
_BUILD_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


@dataclass(frozen=True)
class GitFile:
    sha256: str
    data: bytes | None  # None when larger than _KEEP_BYTES
    link: str | None = None  # for a symlink (or a file below one): what it points at
    refused: bool = False  # a symlink out of the tree (or dangling): stands for itself


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
    return _with_links(files, links, limits)


def _inside(name: str, target: str) -> str | None:
    """Where the link ``name`` -> ``target`` points in the tree; None when out of it."""
    if not target or target.startswith("/") or "\0" in target:
        return None
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved in {".", ".."} or resolved.startswith("../"):
        return None
    return resolved


def _with_links(
    files: dict[str, GitFile], links: Mapping[str, str], limits: ArchiveLimits
) -> dict[str, GitFile]:
    """``files`` with each symlink standing for what it points at inside the tree.

    A link to a file stands for that file, a link to a folder for a copy of every file
    below it (sdists hold copies); chains are followed a few steps. A link out of the
    tree, dangling, or to one of its own parents stands for itself (its target as text),
    so an sdist holding anything there differs.
    """
    pending = dict(links)
    for _ in range(8):  # chains of links: each round resolves the links whose target is known
        progress = False
        for name, target in sorted(pending.items()):
            resolved = _inside(name, target)
            if resolved is None or name == resolved or name.startswith(resolved + "/"):
                continue
            if resolved in pending or any(p.startswith(resolved + "/") for p in pending):
                continue  # its target holds a link not resolved yet: a later round
            pointed = files.get(resolved)
            if pointed is not None:
                files[name] = GitFile(pointed.sha256, pointed.data, target)
            else:
                below = {p: f for p, f in files.items() if p.startswith(resolved + "/")}
                if not below:
                    continue
                for path, found in below.items():
                    rest = path[len(resolved) + 1 :]
                    files[f"{name}/{rest}"] = GitFile(
                        found.sha256, found.data, f"{target.rstrip('/')}/{rest}"
                    )
                if len(files) > limits.max_entries:
                    raise SourceLimitError(f"the tree has over {limits.max_entries} entries")
            del pending[name]
            progress = True
        if not progress:
            break
    for name, target in pending.items():
        body = f"symlink -> {target}".encode()
        files[name] = GitFile(hashlib.sha256(body).hexdigest(), body, target, refused=True)
    return files


def git_tar_time(path: Path) -> int | None:
    """The commit's time: git archive gives it to every member (None when unreadable)."""
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if info.type != tarfile.XGLTYPE:
                    return int(info.mtime)
    except (tarfile.TarError, OSError):
        return None
    return None


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


def sdist_digests(paths: Mapping[str, Path]) -> dict[str, str]:
    return {p: _sha256(f) for p, f in paths.items()}


def compare_tree(
    sdist_root: Path,
    git: Mapping[str, GitFile],
    *,
    project: str,
    version: str,
    rules: tuple[Rule, ...] = RULES,
    regeneration: Regeneration = NOT_REGENERATED,
    blob: Callable[[str], bytes | None] | None = None,
) -> TreeComparison:
    """Judge the extracted sdist at ``sdist_root`` against the commit's files ``git``.

    ``regeneration`` holds the generated files of the sdist rebuilt from git (the rules
    compare with them), ``blob`` reads a committed blob by its path in the repository.
    """
    paths = sdist_files(sdist_root)
    digests = sdist_digests(paths)
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
            if theirs.link is not None and not theirs.refused:
                copy = f"a copy of {theirs.link}, a symlink in git inside the tree"
                explained.append(ExplainedFile(path, SYMLINK_COPY_RULE, copy))
            continue
        ours = paths[path].read_bytes()
        wants_blob = blob is not None and path.rpartition("/")[2] == ".git_archival.txt"
        case = FileCase(
            path,
            ours,
            None if theirs is None else theirs.data or b"",
            project,
            version,
            pyproject,
            regeneration,
            blob(prefix + path) if blob is not None and wants_blob else None,
        )
        found = explain(case, rules)
        if found is not None and found[1].outcome is Outcome.EXPLAINED:
            explained.append(ExplainedFile(path, str(found[0]), found[1].detail))
            continue
        if found is not None and found[1].outcome is Outcome.UNEXPLAINED:
            kind, detail = DiffKind.UNEXPLAINED, f"{found[0]}: {found[1].detail}"
        elif found is not None:  # reproduced, and not the same: a content difference
            kind, detail = DiffKind.CONTENT, f"{found[0]}: {found[1].detail}"
        else:
            kind, detail = (DiffKind.SDIST_ONLY if theirs is None else DiffKind.CONTENT), ""
        differing.append(DifferingFile(path, kind, detail))
        twin = regeneration.files.get(path) if found is not None else None
        if twin is not None and theirs is None:
            regenerated = GitFile(hashlib.sha256(twin).hexdigest(), twin)
            diffs.append(unified_diff(path, regenerated, ours, "regenerated"))
        else:
            diffs.append(unified_diff(path, theirs, ours))
    in_sdist = {prefix + p for p in paths}
    repo_only = tuple(sorted(n for n in git if n.startswith(prefix) and n not in in_sdist))
    diff = "".join(diffs)
    lines = diff.splitlines(keepends=True)
    if len(lines) > _DIFF_LINES:
        diff = "".join(lines[:_DIFF_LINES]) + f"[... {len(lines) - _DIFF_LINES} lines cut ...]\n"
    verdict = SourceVerdict.INCONSISTENT if differing else SourceVerdict.CONSISTENT
    return TreeComparison(verdict, subdir, tuple(explained), tuple(differing), repo_only, diff)


def unified_diff(path: str, theirs: GitFile | None, ours: bytes, origin: str = "git") -> str:
    """``git`` -> ``sdist`` diff of one file (a note instead for binary or large files)."""
    before = b"" if theirs is None else theirs.data
    header_a = "/dev/null" if theirs is None else f"{origin}/{path}"
    if before is None or len(before) > _DIFF_BYTES or len(ours) > _DIFF_BYTES:
        return f"--- {header_a}\n+++ sdist/{path}\n(too large for a text diff)\n"
    if b"\0" in before or b"\0" in ours:
        return f"--- {header_a}\n+++ sdist/{path}\n(binary files differ)\n"
    a = before.decode("utf-8", "replace").splitlines(keepends=True)
    b = ours.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, fromfile=header_a, tofile=f"sdist/{path}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
