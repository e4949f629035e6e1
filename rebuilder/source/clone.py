"""Fetch a source repository into a cache, through gitpython, within limits.

The repository is untrusted. So:

* only ``https://`` and ``file://`` URLs are used (git's other transports, ``ext::``
  and friends, are refused by URL check *and* by ``protocol.allow=never``);
* a bare repository per URL in the cache: nothing is checked out, so no hook, filter,
  submodule or ``.gitattributes`` smudge ever runs (``core.hooksPath`` points nowhere,
  the user's and the system's git configuration are not read, objects are fsck'ed);
* tags are listed with ``ls-remote`` (no objects downloaded), and only the one tag that
  names the version is fetched, shallow (``--depth 1``) and forced (a moved tag is seen
  as moved);
* a fetch is killed past ``timeout_seconds`` or when the repository folder grows past
  ``max_bytes``; the tree of a commit is measured (``ls-tree -l``) before it is
  archived, so a huge tree is refused before any of it is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import git
from git.exc import GitCommandError

from rebuilder.source.errors import CloneError, RepositoryUnreachableError, SourceLimitError

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = frozenset({"https", "file"})
_GIT_OPTIONS = (
    "-c", "protocol.allow=never",
    "-c", "protocol.https.allow=always",
    "-c", "protocol.file.allow=always",
    "-c", "core.hooksPath=/dev/null",
    "-c", "transfer.fsckObjects=true",
    "-c", "fetch.recurseSubmodules=false",
    "-c", "submodule.recurse=false",
    "-c", "core.symlinks=false",
    "-c", "credential.helper=",
)  # fmt: skip
MODE_SYMLINK = 0o120000
MODE_SUBMODULE = 0o160000


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a commit's tree (``git ls-tree -r -l``)."""

    path: str
    mode: int
    size: int  # bytes of the blob; 0 for submodules


@dataclass(frozen=True)
class CloneLimits:
    """Limits of one repository."""

    max_bytes: int = 512 * 1024**2  # the repository folder, and a commit's tree
    max_entries: int = 50_000  # files in a commit's tree
    timeout_seconds: float = 300.0  # one git command


class SourceRepository(Protocol):
    """A remote repository, as source tracing needs it."""

    @property
    def url(self) -> str: ...

    def tags(self) -> dict[str, str]:
        """Every tag of the remote: name (without ``refs/tags/``) -> commit it names."""
        ...

    def fetch_tag(self, tag: str) -> str:
        """Fetch ``tag`` (forced, shallow); the commit it names now."""
        ...

    def tree(self, commit: str) -> list[TreeEntry]:
        """The entries of ``commit``'s tree (regular files, symlinks, submodules)."""
        ...

    def archive(self, commit: str, target: Path, prefix: str) -> Path:
        """``git archive --format=tar`` of ``commit`` into the file ``target``."""
        ...

    def blob(self, commit: str, path: str) -> bytes | None:
        """The committed bytes of ``path`` at ``commit`` (no export-subst); None if none."""
        ...


class Cloner(Protocol):
    """Opens repositories by URL (the real one caches them on disk)."""

    def open(self, url: str) -> SourceRepository: ...


def check_url(url: str) -> str:
    """``url`` if it is an https or file URL; raises CloneError otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise CloneError(f"{url!r} is not a URL") from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise CloneError(f"{url!r}: only https:// and file:// repositories are fetched")
    if parts.scheme == "https" and not parts.hostname:
        raise CloneError(f"{url!r} names no host")
    if parts.scheme == "file" and parts.netloc not in {"", "localhost"}:
        raise CloneError(f"{url!r}: a file URL must be local")
    if parts.username or parts.password:
        raise CloneError("repository URLs with credentials are not used")
    if any(ord(c) < 0x20 for c in url) or url.startswith("-"):
        raise CloneError(f"{url!r} holds control characters")
    return url


# git's words for a host that did not answer (curl's and the git protocol's), as opposed
# to one that answered "no such repository".
_UNREACHABLE = re.compile(
    r"Could not resolve host|Failed to connect|Connection (?:timed out|refused|reset)"
    r"|Operation timed out|returned error: 5\d\d|RPC failed|early EOF"
    r"|SSL_ERROR|gnutls_handshake|Temporary failure in name resolution",
    re.IGNORECASE,
)
# A git killed by the time limit (gitpython's kill_after_timeout).
_KILLED = frozenset({-9, 137, "killed", -15})


_BLOB_BYTES = 1024**2  # committed blobs read whole (for .git_archival.txt) up to this size


def one_line(stderr: str) -> str:
    """git's (often multi-line) message as one line ("; " between lines), at most 500 chars."""
    text = stderr.strip()
    if text.startswith("stderr: '") and text.endswith("'"):  # gitpython's wrapping
        text = text[len("stderr: '") : -1]
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "; ".join(line for line in lines if line)[-500:]


def _environment(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ALLOW_PROTOCOL": "https:file",
        "GIT_PROTOCOL_FROM_USER": "0",
    }


def folder_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (symlinks not followed)."""
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(Path(top, name)).st_size
    return total


class GitRepository:
    """A bare repository in the cache that mirrors the tags of one remote URL."""

    def __init__(self, url: str, path: Path, limits: CloneLimits) -> None:
        self._url = check_url(url)
        self._path = path
        self._limits = limits
        self._home = path / "rebuilder-home"
        if not (path / "HEAD").is_file():
            path.mkdir(parents=True, exist_ok=True)
            git.Repo.init(path, bare=True)
        self._home.mkdir(exist_ok=True)
        self._git = git.Git(str(path))

    @property
    def url(self) -> str:
        return self._url

    def _run(self, *args: str, timeout: float | None = None) -> str:
        command = ["git", *_GIT_OPTIONS, "--git-dir", str(self._path), *args]
        try:
            out = self._git.execute(
                command,
                env=_environment(self._home),
                kill_after_timeout=timeout or self._limits.timeout_seconds,
                stdout_as_string=True,
                strip_newline_in_stdout=False,
            )
        except GitCommandError as exc:
            stderr = one_line(str(exc.stderr or ""))
            if _UNREACHABLE.search(stderr) or exc.status in _KILLED:
                raise RepositoryUnreachableError(
                    f"git {args[0]} {self._url}: the host did not answer: {stderr}"
                ) from None
            raise CloneError(f"git {args[0]} {self._url} failed: {stderr}") from None
        return str(out)

    def tags(self) -> dict[str, str]:
        """See :class:`SourceRepository`."""
        out = self._run("ls-remote", "--tags", "--", self._url)
        direct: dict[str, str] = {}
        peeled: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if not ref.startswith("refs/tags/") or len(sha) not in (40, 64):
                continue
            name = ref.removeprefix("refs/tags/")
            if name.endswith("^{}"):
                peeled[name.removesuffix("^{}")] = sha
            else:
                direct[name] = sha
        return {name: peeled.get(name, sha) for name, sha in direct.items()}

    def fetch_tag(self, tag: str) -> str:
        """See :class:`SourceRepository`; killed past the time or size limit."""
        if tag.startswith("-") or any(c in tag for c in " ~^:?*[\\") or ".." in tag:
            raise CloneError(f"{tag!r} is not a tag name this tracer fetches")
        ref = f"refs/tags/{tag}"
        command = [
            "git", *_GIT_OPTIONS, "--git-dir", str(self._path), "fetch", "--quiet", "--no-tags",
            "--depth=1", "--force", "--", self._url, f"+{ref}:{ref}",
        ]  # fmt: skip
        self._watch(command)
        return self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()

    def _watch(self, command: Sequence[str]) -> None:
        """Run ``command``, killing it past the time limit or when the folder grows too big."""
        limits = self._limits
        process = self._git.execute(
            list(command), env=_environment(self._home), as_process=True, stdout_as_string=True
        )
        popen = process.proc
        deadline = time.monotonic() + limits.timeout_seconds
        why = ""
        while popen is not None and popen.poll() is None:
            if time.monotonic() > deadline:
                why = f"took over {limits.timeout_seconds:g}s"
            elif folder_bytes(self._path) > limits.max_bytes:
                why = f"grew past {limits.max_bytes} bytes"
            if why:
                popen.kill()
                popen.wait()
                break
            time.sleep(0.05)
        stderr = popen.stderr.read().decode("utf-8", "replace") if popen and popen.stderr else ""
        if why:
            self._drop_objects()
            raise SourceLimitError(f"fetching {self._url} {why}: stopped")
        if popen is None or popen.returncode != 0:
            raise CloneError(f"git fetch {self._url} failed: {one_line(stderr)}")

    def _drop_objects(self) -> None:
        """After a fetch was killed, throw away what it left (the next one starts clean)."""
        shutil.rmtree(self._path, ignore_errors=True)

    def tree(self, commit: str) -> list[TreeEntry]:
        """See :class:`SourceRepository`; raises SourceLimitError for an oversized tree."""
        out = self._run("ls-tree", "-r", "-l", "-z", "--full-tree", commit)
        entries: list[TreeEntry] = []
        total = 0
        for record in out.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode_text, _kind, _sha, size_text = meta.split(maxsplit=3)
            size = int(size_text) if size_text.strip().isdigit() else 0
            total += size
            entries.append(TreeEntry(path, int(mode_text, 8), size))
            if len(entries) > self._limits.max_entries:
                raise SourceLimitError(f"{commit[:12]} has over {self._limits.max_entries} files")
            if total > self._limits.max_bytes:
                raise SourceLimitError(
                    f"the tree of {commit[:12]} is over {self._limits.max_bytes} bytes"
                )
        return entries

    def archive(self, commit: str, target: Path, prefix: str) -> Path:
        """See :class:`SourceRepository`; the tree is measured first (:meth:`tree`)."""
        self.tree(commit)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            try:
                self._git.execute(
                    ["git", *_GIT_OPTIONS, "--git-dir", str(self._path), "archive",
                     "--format=tar", f"--prefix={prefix}", commit],
                    env=_environment(self._home),
                    kill_after_timeout=self._limits.timeout_seconds,
                    output_stream=out,
                )  # fmt: skip
            except GitCommandError as exc:
                stderr = one_line(str(exc.stderr or ""))
                raise CloneError(f"git archive {commit[:12]} failed: {stderr}") from None
        return target

    def blob(self, commit: str, path: str) -> bytes | None:
        """See :class:`SourceRepository`; None too for a blob over 1 MiB."""
        spec = f"{commit}:{path}"
        try:
            size = int(self._run("cat-file", "-s", spec).strip())
        except (CloneError, ValueError):
            return None
        if size > _BLOB_BYTES:
            return None
        try:
            out = self._git.execute(
                ["git", *_GIT_OPTIONS, "--git-dir", str(self._path), "cat-file", "blob", spec],
                env=_environment(self._home),
                kill_after_timeout=self._limits.timeout_seconds,
                stdout_as_string=False,
                strip_newline_in_stdout=False,
            )
        except GitCommandError:
            return None
        return bytes(out) if isinstance(out, bytes) else None


class GitCloner:
    """Opens one cached bare repository per URL under ``cache_dir``."""

    def __init__(self, cache_dir: Path, limits: CloneLimits | None = None) -> None:
        self._cache_dir = cache_dir
        self._limits = limits or CloneLimits()

    def open(self, url: str) -> GitRepository:
        check_url(url)
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
        return GitRepository(url, self._cache_dir / f"{key}.git", self._limits)
