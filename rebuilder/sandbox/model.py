"""What a sandboxed build takes and gives (the Protocol the pipeline talks to)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one build container."""

    timeout_seconds: float = 900.0
    memory_bytes: int = 4 * 1024**3
    pids: int = 512
    cpus: float = 2.0
    log_bytes: int = 2 * 1024**2  # what is kept of the build log
    output_bytes: int = 512 * 1024**2  # the largest artifact accepted (and /out's size)
    output_files: int = 1024  # the most files /out may hold at once
    scratch_bytes: int = 4 * 1024**3  # tmpfs for the build tree and its environment


@dataclass(frozen=True)
class BuildRequest:
    """One build: source tree, wheelhouse and environment, all prepared on the host."""

    image: str  # image id or digest reference
    source_dir: Path  # the extracted sdist's project folder (holds pyproject.toml/setup.py)
    wheelhouse: Path  # folder of hash-checked wheels; the only package source in the box
    requirements: tuple[str, ...]  # "name==version" to install before building
    distribution: str  # "wheel", "sdist", or "metadata" (the wheel's METADATA alone)
    env: Mapping[str, str]
    output_dir: Path  # host folder that receives the built file
    umask: int = 0o022
    build_clock: int | None = None  # replay: mtime given to files written during the build
    source_mtime: int | None = None  # replay: one mtime given to every source file first
    source_mode_mask: int = 0  # replay: mode bits cleared from every source file first
    config_settings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # PEP 517
    # replay: the original clock per generated file (archive path -> time), by path suffix
    clock_map: Mapping[str, int] = field(default_factory=dict)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    labels: Mapping[str, str] = field(default_factory=dict)


class BuildStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"  # the backend or an install step failed (exit != 0)
    TIMEOUT = "timeout"  # wall-clock limit hit; container killed
    MISSING_REQUIREMENTS = "missing-requirements"  # dynamic build requires not installed
    SANDBOX = "sandbox"  # a limit was hit (memory, pids, output size) or the box misbehaved
    INTERRUPTED = "interrupted"  # stopped from outside (the engine restarting): may pass


@dataclass(frozen=True)
class BuildOutcome:
    status: BuildStatus
    artifact: Path | None  # the built file in output_dir (None unless OK)
    log: str  # the build log, capped to limits.log_bytes (a note says when it was cut)
    exit_code: int | None = None
    missing: tuple[str, ...] = ()  # with MISSING_REQUIREMENTS: the PEP 508 strings asked for
    detail: str = ""  # a one-line reason for a person
    timings: Mapping[str, float] = field(default_factory=dict)  # container, install, build


class Sandbox(Protocol):
    def run(self, request: BuildRequest) -> BuildOutcome:
        """Run the build. Never raises for a failing build; raises SandboxError only when
        the sandbox itself cannot be used (no Docker, no image)."""
        ...


IMAGE_REPOSITORY = "pypi-rebuilder-sandbox"
IMAGE_REGISTRY_NAME = IMAGE_REPOSITORY
_DESCRIPTION_SCHEMA = 1


@dataclass(frozen=True)
class ImageDescription:
    """What another host needs to obtain or rebuild the very same sandbox image.

    ``packages`` is the exact Debian package set (``name=version`` per line, sorted) as
    ``dpkg-query`` lists it inside the image; ``recipe`` the digests of the
    ``images/sandbox`` files when the image was built from them here (its tag is the hash
    of those files and its base); ``archive_sha256`` the digest of a ``docker save``
    tarball of it, when one was exported (``rebuilder image export``).
    """

    image_id: str  # sha256:... (the image's config digest)
    tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    base: str | None = None
    packages: tuple[str, ...] = ()
    recipe: tuple[tuple[str, str], ...] = ()  # (file name under images/sandbox, sha256)
    archive_sha256: str | None = None

    @property
    def oci_reference(self) -> str:
        """An OCI-style reference: ``NAME@sha256:...`` (the registry digest if there is one)."""
        if self.repo_digests:
            return self.repo_digests[0]
        name = self.tags[0].rsplit(":", 1)[0] if self.tags else IMAGE_REGISTRY_NAME
        return f"{name}@{self.image_id}"

    @property
    def packages_sha256(self) -> str:
        return hashlib.sha256(("\n".join(self.packages) + "\n").encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": _DESCRIPTION_SCHEMA,
            "image_id": self.image_id,
            "tags": list(self.tags),
            "repo_digests": list(self.repo_digests),
            "base": self.base,
            "packages": list(self.packages),
            "recipe": [list(pair) for pair in self.recipe],
            "archive_sha256": self.archive_sha256,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageDescription:
        if data.get("schema") != _DESCRIPTION_SCHEMA:
            raise ValueError(f"unsupported image description schema {data.get('schema')!r}")
        return cls(
            image_id=str(data["image_id"]),
            tags=tuple(data["tags"]),
            repo_digests=tuple(data["repo_digests"]),
            base=data["base"],
            packages=tuple(data["packages"]),
            recipe=tuple((str(a), str(b)) for a, b in data["recipe"]),
            archive_sha256=data["archive_sha256"],
        )
