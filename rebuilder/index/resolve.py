"""Pinning build requirements as of a point in time with ``uv pip compile``.

uv runs with no user configuration, a private cache, only the given index, binary
distributions only (nothing is built to resolve) and ``--exclude-newer`` set to the
release's upload time, so the answer is what an installer would have picked then.
Requirements are validated as PEP 508 before they reach uv: a line such as
``--extra-index-url`` or a direct URL could otherwise redirect the resolution.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from rebuilder.errors import ResolveError
from rebuilder.index.cache import is_sha256
from rebuilder.index.model import ResolvedPin

log = logging.getLogger(__name__)

#: Debian bookworm ships glibc 2.36; the sandbox image is bookworm x86_64 CPython.
DEFAULT_PYTHON_PLATFORM = "x86_64-manylinux_2_36"
DEFAULT_TIMEOUT = 600.0
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PIN_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*(?P<version>[^\s;]+)\s*(?:;.*)?$"
)
_MAX_ERROR_LINES = 25


def find_uv() -> str:
    """The ``uv`` next to the running interpreter (our venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise ResolveError("uv was not found next to the Python interpreter nor on PATH")
    return found


@functools.cache
def _system_certs_flag(uv: str) -> str:
    """The flag by which this uv trusts the system certificate store."""
    try:
        out = subprocess.run(
            [uv, "pip", "compile", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    # uv renamed --native-tls to --system-certs; the old name still works with a warning.
    return "--system-certs" if "--system-certs" in out else "--native-tls"


_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
# A cutoff later than any upload: how uv is told a distribution has none.
_NO_CUTOFF = "2999-12-31T00:00:00Z"


def format_exclude_newer(as_of: datetime) -> str:
    """``as_of`` as the UTC RFC 3339 timestamp uv expects; naive times are refused.

    Fractions of a second are kept: a dependency uploaded earlier in the same second as
    the release must still be admitted.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError(f"as_of must be timezone-aware, got {as_of!r}")
    utc = as_of.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_requirements(requirements: Sequence[str]) -> list[str]:
    """The requirements, each checked as a PEP 508 requirement from an index."""
    lines = []
    for raw in requirements:
        text = raw.strip()
        if not text or "\n" in text or "\r" in text:
            raise ResolveError(f"invalid requirement {raw!r}")
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise ResolveError(f"invalid requirement {raw!r}: {exc}") from exc
        if req.url is not None:
            raise ResolveError(f"direct URL requirements are not resolved from the index: {raw!r}")
        lines.append(str(req))
    return lines


def parse_compile_output(text: str) -> list[ResolvedPin]:
    """The pins of ``uv pip compile --generate-hashes --no-annotate --no-header`` output."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            logical.append(pending.strip())
        pending = ""
    if pending.strip():
        logical.append(pending.strip())

    pins: list[ResolvedPin] = []
    for entry in logical:
        if entry.startswith("-"):
            continue  # an option line such as --index-url; we never ask for them
        tokens = entry.split()
        hashes = []
        for token in tokens:
            if token.startswith("--hash="):
                algo, _, digest = token.removeprefix("--hash=").partition(":")
                if algo == "sha256" and is_sha256(digest.lower()):
                    hashes.append(digest.lower())
        spec = " ".join(t for t in tokens if not t.startswith("--hash="))
        match = _PIN_RE.match(spec)
        if match is None:
            raise ResolveError(f"uv answered a line that is not an exact pin: {entry!r}")
        try:
            version = str(Version(match["version"]))
        except InvalidVersion as exc:
            raise ResolveError(f"uv pinned an invalid version: {entry!r}") from exc
        if not hashes:
            raise ResolveError(f"uv gave no sha256 hash for {spec}")
        pins.append(
            ResolvedPin(
                name=canonicalize_name(match["name"]),
                version=version,
                sha256s=tuple(sorted(set(hashes))),
            )
        )
    return pins


def _key_lines(stderr: str) -> str:
    lines = [_ANSI_RE.sub("", line).rstrip() for line in stderr.splitlines()]
    kept = [line for line in lines if line.strip() and not line.startswith("warning:")]
    if not kept:
        kept = [line for line in lines if line.strip()]
    if len(kept) > _MAX_ERROR_LINES:
        kept = [*kept[:_MAX_ERROR_LINES], "..."]
    return "\n".join(kept)


class UvResolver:
    """A :class:`~rebuilder.index.model.Resolver` that runs ``uv pip compile``."""

    def __init__(
        self,
        index_url: str,
        cache_dir: Path,
        *,
        uv: str | None = None,
        python_platform: str = DEFAULT_PYTHON_PLATFORM,
        platforms: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.index_url = index_url
        self.cache_dir = cache_dir
        self.uv = uv
        self.python_platform = python_platform
        # The platform tags of each interpreter's image ("3.9" -> its glibc), so that
        # wheels are chosen for the interpreter that builds; others use python_platform.
        self.platforms = dict(platforms or {})
        self.timeout = timeout

    def command(
        self, *, as_of: datetime | None, python_version: str, beyond_as_of: Sequence[str] = ()
    ) -> list[str]:
        """The uv command line for one resolution (requirements come on stdin)."""
        uv = self.uv or find_uv()
        cmd = [
            uv,
            "pip",
            "compile",
            "-",
            "--no-config",
            # Resolving for a Python the host lacks must not fetch one: the version and
            # platform given below are all the resolution needs.
            "--no-python-downloads",
            "--index-url",
            self.index_url,
            "--python-version",
            python_version,
            "--python-platform",
            self.platforms.get(python_version, self.python_platform),
            "--only-binary",
            ":all:",
            "--generate-hashes",
            "--no-header",
            "--no-annotate",
            "--no-progress",
            "--color",
            "never",
            "--cache-dir",
            str(self.cache_dir),
            _system_certs_flag(uv),
        ]
        if as_of is not None:
            cmd += ["--exclude-newer", format_exclude_newer(as_of)]
            for name in beyond_as_of:
                # No cutoff for it: the caller pins it exactly.
                cmd += ["--exclude-newer-package", f"{name}={_NO_CUTOFF}"]
        return cmd

    def resolve(
        self,
        requirements: Sequence[str],
        *,
        as_of: datetime | None,
        python_version: str,
        beyond_as_of: Sequence[str] = (),
    ) -> Sequence[ResolvedPin]:
        """Pin ``requirements`` to wheels uploaded no later than ``as_of`` (but for the
        distributions ``beyond_as_of``, which the requirements pin exactly)."""
        lines = validate_requirements(requirements)
        if not lines:
            return ()
        for name in beyond_as_of:
            if not _NAME.fullmatch(name):
                raise ResolveError(f"invalid distribution name {name!r}")
        cmd = self.command(as_of=as_of, python_version=python_version, beyond_as_of=beyond_as_of)
        # uv's own settings in our environment (an index, find-links, a cutoff) must not
        # change what is resolved.
        env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
        env["NO_COLOR"] = "1"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                input="\n".join(lines) + "\n",
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ResolveError(
                f"uv did not resolve {', '.join(lines)} within {self.timeout}s"
            ) from exc
        except OSError as exc:
            raise ResolveError(f"cannot run uv ({cmd[0]}): {exc}") from exc
        elapsed = time.monotonic() - started
        if proc.returncode != 0:
            raise ResolveError(
                f"cannot resolve {', '.join(lines)}"
                + (f" as of {format_exclude_newer(as_of)}" if as_of else "")
                + f":\n{_key_lines(proc.stderr)}"
            )
        pins = parse_compile_output(proc.stdout)
        log.info("resolved %s -> %d pins in %.2fs", ", ".join(lines), len(pins), elapsed)
        return tuple(pins)
