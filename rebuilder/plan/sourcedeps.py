"""Build requirements with no wheel: built from their sdist in the sandbox, then installed.

Resolution takes wheels only (``uv pip compile --only-binary :all:``): nothing runs on
the host. A build requirement that never published a wheel (or none for the build's
interpreter) makes that resolution fail, although the maintainer's installer of the
time built it from its sdist without a word. When the resolution fails, each direct
requirement is looked up on the index: if the newest version it allows as of the upload
time has an sdist but no wheel the sandbox can install, that sdist is downloaded
(hash-checked), built into a wheel in the same network-less sandbox as any rebuild (its
own ``[build-system]``, resolved as of the same time, wheels only), and the wheel joins
the wheelhouse. The rest is resolved again, with the built wheel's own dependencies.
``strategy.json`` records every such build (:class:`SourceBuild`).

Nothing is built when the version chosen has a wheel. A requirement of a requirement
(not named by the sdist or its backend) is not looked up, and an sdist-only requirement
of the sdist-only requirement's own build is not built in turn: the resolution failure
stands, with the reason.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from rebuilder.archive.tarread import extract_sdist
from rebuilder.archive.zipread import read_zip
from rebuilder.errors import ArchiveError, NotFoundError, RebuilderError, ResolveError
from rebuilder.index.cache import sha256_file
from rebuilder.index.model import (
    BuildRequirement,
    FileKind,
    Index,
    IndexFile,
    PinnedFile,
    Resolver,
    refused_name,
)
from rebuilder.index.wheelhouse import fetch_wheelhouse, manylinux_platforms, sandbox_tags
from rebuilder.plan.backend import read_build_system
from rebuilder.plan.strategy import SourceBuild
from rebuilder.sandbox.model import BuildRequest, BuildStatus, Sandbox, SandboxLimits

logger = logging.getLogger(__name__)

MAX_SOURCE_BUILDS = 4  # sdist-only requirements built for one rebuild, at most
_MAX_ROUNDS = 3  # static requires, then up to two rounds of dynamic ones
_CACHE_BYTES = 64 * 1024**2  # built wheels kept in memory per builder, at most


@dataclass(frozen=True)
class SourceOnly:
    """A requirement whose chosen version has an sdist and no installable wheel."""

    name: str
    version: str
    sdist: IndexFile


class SourceBuilder(Protocol):
    """Builds one sdist into a wheel, network-less; raises ResolveError when it cannot."""

    def build_wheel(
        self,
        sdist: IndexFile,
        *,
        as_of: datetime | None,
        image: str,
        python_version: str,
        glibc_minor: int | None,
        scratch: Path,
    ) -> Path:
        """The built wheel's path (under ``scratch``)."""
        ...


def marker_environment(python_version: str) -> dict[str, str]:
    """Marker values of the sandbox's interpreter (Linux, CPython ``python_version``)."""
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update(
        python_version=python_version,
        python_full_version=f"{python_version}.0",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
        platform_machine="x86_64",
    )
    return env


def _installable(files: Sequence[IndexFile], tags: Sequence[Tag]) -> bool:
    accepted = set(tags)
    for file in files:
        if file.kind is not FileKind.WHEEL:
            continue
        try:
            _, _, _, file_tags = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue
        if accepted & set(file_tags):
            return True
    return False


def _allows_python(file: IndexFile, python_version: str) -> bool:
    if not file.requires_python:
        return True
    try:
        return SpecifierSet(file.requires_python).contains(f"{python_version}.0")
    except InvalidSpecifier:
        return True


def source_only(
    index: Index,
    requirements: Sequence[str],
    *,
    as_of: datetime | None,
    python_version: str,
    tags: Sequence[Tag],
) -> list[SourceOnly]:
    """The direct requirements whose chosen version has an sdist but no installable wheel.

    The version chosen is the newest one (final releases unless only pre-releases fit)
    that every requirement on the project allows, not yanked, and uploaded no later than
    ``as_of`` (an sdist must be, too). Projects the index does not know are left out.
    """
    environment = marker_environment(python_version)
    wanted: dict[str, list[Requirement]] = {}
    for raw in requirements:
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({**environment, "extra": ""}):
            continue
        wanted.setdefault(canonicalize_name(req.name), []).append(req)
    found = []
    for name, reqs in sorted(wanted.items()):
        try:
            files = index.project_files(name)
        except (NotFoundError, RebuilderError):
            continue
        by_version: dict[Version, list[IndexFile]] = {}
        for file in files:
            if file.yanked or (as_of and file.upload_time and file.upload_time > as_of):
                continue
            try:
                by_version.setdefault(Version(file.version), []).append(file)
            except InvalidVersion:
                continue
        allowed = [v for v in by_version if all(r.specifier.contains(v, True) for r in reqs)]
        final = [v for v in allowed if not v.is_prerelease] or allowed
        if not final:
            continue
        chosen = max(final)
        release = by_version[chosen]
        if _installable(release, tags):
            continue
        sdists = sorted(
            (
                f
                for f in release
                if f.kind is FileKind.SDIST
                and refused_name(f.filename) is None
                and _allows_python(f, python_version)
            ),
            key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename),
        )
        if sdists:
            found.append(SourceOnly(name, str(chosen), sdists[0]))
    return found


def wheel_requirements(wheel: Path, python_version: str) -> list[str]:
    """The ``Requires-Dist`` of a built wheel that apply to the sandbox's interpreter."""
    try:
        entries = read_zip(wheel).entries
    except ArchiveError as exc:
        raise ResolveError(f"the wheel built from source cannot be read: {exc}") from None
    metadata = next(
        (
            e.data
            for e in entries
            if e.name.count("/") == 1 and e.name.endswith(".dist-info/METADATA")
        ),
        None,
    )
    if metadata is None:
        raise ResolveError(f"the wheel built from source, {wheel.name}, has no METADATA")
    environment = marker_environment(python_version)
    out = []
    for line in metadata.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # the body starts
        if not line.lower().startswith("requires-dist:"):
            continue
        try:
            req = Requirement(line.split(":", 1)[1].strip())
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({**environment, "extra": ""}):
            req.marker = None
            out.append(str(req))
    return out


def _check_wheel(wheel: Path, wanted: SourceOnly, tags: Sequence[Tag]) -> None:
    try:
        name, version, _, file_tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        msg = f"the build of {wanted.sdist.filename} gave {wheel.name}: {exc}"
        raise ResolveError(msg) from None
    if canonicalize_name(name) != wanted.name or version != Version(wanted.version):
        raise ResolveError(
            f"the build of {wanted.sdist.filename} gave {wheel.name}, "
            f"not a wheel of {wanted.name}=={wanted.version}"
        )
    if not set(file_tags) & set(tags):
        raise ResolveError(f"{wheel.name}, built from source, does not install in the sandbox")


def resolve_build_requirements(
    requirements: Sequence[str],
    *,
    as_of: datetime | None,
    python_version: str,
    glibc_minor: int | None,
    image: str,
    resolver: Resolver,
    index: Index,
    wheelhouse: Path,
    builder: SourceBuilder | None,
) -> tuple[tuple[BuildRequirement, ...], tuple[SourceBuild, ...]]:
    """Resolve ``requirements`` into ``wheelhouse``, building sdist-only ones from source.

    Without a ``builder``, or when no direct requirement is sdist-only, a failed
    resolution raises its ResolveError unchanged.
    """
    platforms = manylinux_platforms(glibc_minor) if glibc_minor else None
    try:
        pins = resolver.resolve(requirements, as_of=as_of, python_version=python_version)
    except ResolveError:
        if builder is None:
            raise
        tags = sandbox_tags(python_version, platforms)
        wanted = source_only(
            index, requirements, as_of=as_of, python_version=python_version, tags=tags
        )
        if not wanted:
            raise
    else:
        resolved = fetch_wheelhouse(
            index, pins, wheelhouse, python_version=python_version, platforms=platforms
        )
        return resolved, ()
    if len(wanted) > MAX_SOURCE_BUILDS:
        names = ", ".join(w.name for w in wanted)
        raise ResolveError(f"too many build requirements with no wheel to build them all: {names}")
    wheelhouse.mkdir(parents=True, exist_ok=True)
    built: list[SourceBuild] = []
    dependencies: list[str] = []
    for item in wanted:
        logger.info("%s==%s has no wheel: building it from %s", item.name, item.version, item.sdist)
        wheel = builder.build_wheel(
            item.sdist,
            as_of=as_of,
            image=image,
            python_version=python_version,
            glibc_minor=glibc_minor,
            scratch=wheelhouse.with_name(f"{wheelhouse.name}-sources") / item.name,
        )
        _check_wheel(wheel, item, tags)
        target = wheelhouse / wheel.name
        shutil.copyfile(wheel, target)
        dependencies += wheel_requirements(target, python_version)
        built.append(
            SourceBuild(
                item.name,
                item.version,
                PinnedFile(item.sdist.filename, item.sdist.url, item.sdist.sha256),
                PinnedFile(wheel.name, "", sha256_file(target)),
            )
        )
    built_names = {b.name for b in built}
    rest = [r for r in requirements if canonicalize_name(Requirement(r).name) not in built_names]
    rest += [d for d in dependencies if d not in rest]
    try:
        pins = resolver.resolve(rest, as_of=as_of, python_version=python_version) if rest else ()
    except ResolveError as exc:
        raise ResolveError(
            f"{exc.diagnostics()}\n(built from source for want of a wheel: "
            + ", ".join(b.spec for b in built)
            + ")"
        ) from exc
    pins = [p for p in pins if p.name not in built_names]
    resolved = fetch_wheelhouse(
        index, pins, wheelhouse, python_version=python_version, platforms=platforms
    )
    return resolved, tuple(built)


@dataclass
class SandboxSourceBuilder:
    """Builds sdists of build requirements with the rebuild's own sandbox and limits.

    Each sdist's ``[build-system]`` (setuptools' legacy default when absent) is resolved
    as of the rebuild's upload time, wheels only, and built with the same isolation as
    any rebuild: no network, the resource limits given, a fixed environment. Built wheels
    are kept in memory by (sdist sha256, image), so later rounds and candidates of the
    same rebuild do not build them again.
    """

    index: Index
    resolver: Resolver
    sandbox: Sandbox
    limits: SandboxLimits
    labels: Mapping[str, str] = field(default_factory=dict)
    _cache: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)

    def build_wheel(
        self,
        sdist: IndexFile,
        *,
        as_of: datetime | None,
        image: str,
        python_version: str,
        glibc_minor: int | None,
        scratch: Path,
    ) -> Path:
        """Build ``sdist`` into a wheel under ``scratch``; ResolveError says why not."""
        what = f"{sdist.project}=={sdist.version} has no wheel and its sdist {sdist.filename}"
        scratch.mkdir(parents=True, exist_ok=True)
        cached = self._cache.get((sdist.sha256, image))
        if cached is not None:
            path = scratch / cached[0]
            path.write_bytes(cached[1])
            return path
        try:
            local = self.index.download(sdist)  # sha256-checked against the index
            source_dir = extract_sdist(local, scratch / "src")
        except ArchiveError as exc:
            raise ResolveError(f"{what} cannot be used safely: {exc.diagnostics()}") from None
        pyproject = source_dir / "pyproject.toml"
        text = (
            pyproject.read_text(encoding="utf-8", errors="replace") if pyproject.is_file() else None
        )
        try:
            system = read_build_system(text)
        except ValueError as exc:
            raise ResolveError(f"{what} declares no usable build system: {exc}") from None
        requires: tuple[str, ...] = system.requires
        platforms = manylinux_platforms(glibc_minor) if glibc_minor else None
        env = {"TZ": "UTC", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0"}
        if sdist.upload_time is not None:
            env["SOURCE_DATE_EPOCH"] = str(int(sdist.upload_time.timestamp()))
        for _ in range(_MAX_ROUNDS):
            wheelhouse = scratch / "wheelhouse"
            shutil.rmtree(wheelhouse, ignore_errors=True)
            try:
                pins = self.resolver.resolve(requires, as_of=as_of, python_version=python_version)
                resolved = fetch_wheelhouse(
                    self.index,
                    pins,
                    wheelhouse,
                    python_version=python_version,
                    platforms=platforms,
                )
            except ResolveError as exc:
                raise ResolveError(
                    f"{what} cannot be built: its build requirements do not resolve: "
                    f"{exc.diagnostics()}"
                ) from None
            out = scratch / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            outcome = self.sandbox.run(
                BuildRequest(
                    image=image,
                    source_dir=source_dir,
                    wheelhouse=wheelhouse,
                    requirements=tuple(r.spec for r in resolved),
                    distribution="wheel",
                    env=env,
                    output_dir=out,
                    limits=self.limits,
                    labels={**self.labels, "org.pypi-rebuilder.file": sdist.filename[:200]},
                )
            )
            new = [r for r in outcome.missing if r not in requires]
            if outcome.status is not BuildStatus.MISSING_REQUIREMENTS or not new:
                break
            requires = (*requires, *new)
        if outcome.status is not BuildStatus.OK or outcome.artifact is None:
            detail = outcome.detail or outcome.status.value
            if outcome.status is BuildStatus.MISSING_REQUIREMENTS:
                detail += ": " + ", ".join(outcome.missing)
            raise ResolveError(f"{what} did not build ({outcome.status.value}): {detail}")
        if outcome.artifact.suffix != ".whl":
            raise ResolveError(f"{what} built {outcome.artifact.name}, not a wheel")
        size = outcome.artifact.stat().st_size
        if size <= _CACHE_BYTES - sum(len(data) for _, data in self._cache.values()):
            self._cache[(sdist.sha256, image)] = (
                outcome.artifact.name,
                outcome.artifact.read_bytes(),
            )
        return outcome.artifact
