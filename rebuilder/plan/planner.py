"""Turn a published wheel and its sdist into a :class:`Strategy`."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from rebuilder.errors import NotFoundError, RebuilderError, ResolveError
from rebuilder.index.model import BuildRequirement, Index, IndexFile, PinnedFile, Resolver
from rebuilder.plan.backend import (
    alias_through_requirements,
    build_requirements,
    infer_config_settings,
    parse_generator,
    read_build_system,
    setuptools_option_key,
    with_options,
)
from rebuilder.plan.clock import TimedEntry, infer_archive_inputs
from rebuilder.plan.floor import FlooredResolver, below, floor_for
from rebuilder.plan.modes import infer_source_mode_mask, source_modes
from rebuilder.plan.pureswitch import pure_options, pure_switches
from rebuilder.plan.sourcedeps import SourceBuilder, resolve_build_requirements
from rebuilder.plan.strategy import ArchiveInputs, BackendPin, SourceBuild, Strategy
from rebuilder.plan.wheeltool import installed_wheel

logger = logging.getLogger(__name__)


class PublishedEntry(TimedEntry, Protocol):
    """A zip entry of the published wheel, with its content."""

    @property
    def data(self) -> bytes: ...


def dist_info_entry(entries: Sequence[PublishedEntry], name: str) -> PublishedEntry | None:
    """The published wheel's top-level ``*.dist-info/{name}`` entry, if any."""
    for entry in entries:
        folder, _, rest = entry.name.partition("/")
        if rest == name and folder.endswith(".dist-info"):
            return entry
    return None


def published_metadata(entries: Sequence[PublishedEntry]) -> str | None:
    """The text of the published wheel's ``METADATA``, if there is one in UTF-8."""
    entry = dist_info_entry(entries, "METADATA")
    if entry is None:
        return None
    try:
        return entry.data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class ImageChoice:
    """The sandbox image a strategy runs in."""

    reference: str
    digest: str
    python_version: str
    glibc_minor: int | None = None  # the image's glibc (2.N), when not the default's


def unknown_projects(index: Index, requirements: Sequence[str]) -> list[str]:
    """The requirements' projects the index does not know at all (it answers not found).

    A resolver reports a project it cannot find as if no version fitted; saying that the
    project is absent explains the failure better.
    """
    unknown = []
    for raw in requirements:
        try:
            name = canonicalize_name(Requirement(raw).name)
        except InvalidRequirement:
            continue
        try:
            index.project_files(name)
        except NotFoundError:
            unknown.append(name)
        except RebuilderError:
            continue  # the index cannot tell now; the resolver's message stands
    return sorted(set(unknown))


def source_mtimes(root: Path) -> dict[str, float]:
    """The mtime of every regular file under ``root``, by path relative to it."""
    found: dict[str, float] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                found[path.relative_to(root).as_posix()] = info.st_mtime
    return found


def _names_pinned(requirement: str, pin: BackendPin) -> bool:
    """True when ``requirement`` is on the distribution the Generator pins exactly."""
    if pin.distribution is None or pin.version is None:
        return False
    try:
        name = Requirement(requirement).name
    except InvalidRequirement:
        return False
    return canonicalize_name(name) == canonicalize_name(pin.distribution) and (
        requirement != pin.requirement
    )


def _resolve(  # noqa: PLR0917 - a private helper of the two planners
    requires: Sequence[str],
    as_of: datetime | None,
    image: ImageChoice,
    resolver: Resolver,
    index: Index,
    wheelhouse: Path,
    builder: SourceBuilder | None,
) -> tuple[tuple[BuildRequirement, ...], tuple[SourceBuild, ...], tuple[str, ...]]:
    """Resolve and fetch ``requires``; a failure names the projects the index lacks.

    A backend of the upload time too old to run on the image's interpreter is replaced
    by the oldest release that runs (:mod:`rebuilder.plan.floor`); the notes say so.
    """

    def attempt(
        using: Resolver,
    ) -> tuple[tuple[BuildRequirement, ...], tuple[SourceBuild, ...]]:
        return resolve_build_requirements(
            requires,
            as_of=as_of,
            python_version=image.python_version,
            glibc_minor=image.glibc_minor,
            image=image.reference,
            resolver=using,
            index=index,
            wheelhouse=wheelhouse,
            builder=builder,
        )

    floor = floor_for(requires, image.python_version) if as_of is not None else None
    try:
        resolved, built = attempt(resolver)
    except ResolveError as exc:
        if floor is not None:
            try:
                resolved, built = attempt(FlooredResolver(resolver, floor))
            except ResolveError:
                pass
            else:
                return resolved, built, (floor.note(None, image.python_version),)
        unknown = unknown_projects(index, requires)
        if not unknown:
            raise
        raise ResolveError(
            f"{exc.diagnostics()}\nthe index has no project named {', '.join(unknown)}"
        ) from exc
    old = below(floor, resolved) if floor is not None else None
    if floor is None or old is None:
        return resolved, built, ()
    shutil.rmtree(wheelhouse, ignore_errors=True)
    try:
        resolved, built = attempt(FlooredResolver(resolver, floor))
    except ResolveError as exc:
        logger.info("the floor %s did not resolve: %s", floor.requirement, exc.diagnostics())
        shutil.rmtree(wheelhouse, ignore_errors=True)
        resolved, built = attempt(resolver)
        return resolved, built, ()
    return resolved, built, (floor.note(old, image.python_version),)


def _built_note(built: Sequence[SourceBuild]) -> str:
    return "built from source for want of a wheel as of the upload time: " + ", ".join(
        f"{b.spec} (sdist {b.sdist.sha256[:12]}, wheel {b.wheel.sha256[:12]})" for b in built
    )


def _setuptools_backend(backend: str) -> bool:
    """True for setuptools' PEP 517 backends (``setuptools.build_meta[:__legacy__]``)."""
    return backend.split(":", 1)[0] == "setuptools.build_meta"


def plan_wheel(
    *,
    wheel: IndexFile,
    sdist: IndexFile,
    generator: str | None,
    tags: Sequence[str] = (),
    entries: Sequence[PublishedEntry],
    source_dir: Path,
    image: ImageChoice,
    resolver: Resolver,
    index: Index,
    wheelhouse: Path,
    extra_requires: Sequence[str] = (),
    interpreter_reason: str = "",
    source_builder: SourceBuilder | None = None,
) -> Strategy:
    """Infer everything needed to rebuild ``wheel`` from ``sdist``.

    ``entries`` are the published wheel's zip entries, ``source_dir`` the extracted sdist
    (only its ``pyproject.toml`` is read here; nothing from it is executed). Build
    requirements are resolved as of the wheel's upload time and their wheels fetched
    into ``wheelhouse``. ``extra_requires`` are requirements the backend asked for
    dynamically in an earlier attempt. ``interpreter_reason`` says why ``image``'s
    interpreter was chosen (see :mod:`rebuilder.plan.interpreter`). With a
    ``source_builder``, a build requirement with no wheel is built from its sdist (see
    :mod:`rebuilder.plan.sourcedeps`).
    """
    pin = parse_generator(generator)
    notes: list[str] = []
    pyproject = source_dir / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8", errors="replace") if pyproject.is_file() else None
    try:
        system = read_build_system(text)
        aliased = alias_through_requirements(pin, system)
        if aliased != pin:
            notes.append(
                f"Generator {pin.distribution} is imported from {aliased.distribution}, "
                "the distribution the sdist requires for it: pinned at the Generator's version"
            )
            pin = aliased
        requires = build_requirements(system, pin, wheel.project)
    except ValueError as exc:
        raise ResolveError(str(exc)) from None
    record = dist_info_entry(entries, "RECORD")
    wheel_tool = installed_wheel(
        pin, published_metadata(entries), record.external_attr if record else None
    )
    writer = (wheel_tool.requirement,) if wheel_tool else ()
    if wheel_tool:
        notes.append(f"{pin.generator} used {wheel_tool.note}")
    # The Generator's exact pin wins over any range asked for later (the backend's own
    # dynamic requirements repeating the sdist's loose one).
    later = [r for r in (*writer, *extra_requires) if not _names_pinned(r, pin)]
    requires = (*requires, *(r for r in later if r not in requires))
    as_of = wheel.upload_time
    if as_of is None:
        notes.append("the index gave no upload time: build requirements resolved as of now")
    if pin.version is None:
        notes.append(f"Generator {generator!r} names no version: backend left to the resolver")
    # Wheels for the image's own interpreter and glibc, as the resolver chose them.
    resolved, built, floored = _resolve(
        requires, as_of, image, resolver, index, wheelhouse, source_builder
    )
    notes.extend(floored)
    if built:
        notes.append(_built_note(built))
    archive = infer_archive_inputs(entries, source_mtimes(source_dir))
    mask = infer_source_mode_mask(entries, source_modes(source_dir), archive.umask)
    if mask:
        archive = replace(archive, source_mode_mask=mask)
    setuptools = next((r.version for r in resolved if r.name == "setuptools"), None)
    config_settings = infer_config_settings(pin, tags, setuptools)
    switches = pure_switches(source_dir, tags, system.backend_path)
    if switches:
        notes.append(
            "the published wheel is pure and the sdist has extension sources: built with "
            "the switch its build code reads (" + ", ".join(f"{k}={v}" for k, v in switches) + ")"
        )
    # setup.py options skipping the extensions go on its argv through setuptools' own
    # PEP 517 config setting (only setuptools hands such options to setup.py).
    options = pure_options(source_dir, tags) if _setuptools_backend(system.backend) else ()
    if options:
        key = setuptools_option_key(setuptools)
        config_settings = with_options(config_settings, key, options)
        notes.append(
            "the published wheel is pure and the sdist has extension sources: built with the "
            f"option its setup.py takes from sys.argv ({key}={' '.join(options)}, "
            f"setuptools {setuptools or 'unpinned'})"
        )
    return Strategy(
        project=wheel.project,
        version=wheel.version,
        target=wheel.filename,
        distribution="wheel",
        source=PinnedFile(sdist.filename, sdist.url, sdist.sha256),
        backend=pin,
        requirements=resolved,
        archive=archive,
        image=image.reference,
        image_digest=image.digest,
        python_version=image.python_version,
        interpreter_reason=interpreter_reason,
        resolved_as_of=as_of.isoformat() if as_of else None,
        build_requires=tuple(requires),
        config_settings=config_settings,
        notes=tuple(notes),
        build_env=switches,
        built_from_source=built,
    )


def plan_sdist(
    *,
    sdist: IndexFile,
    source_dir: Path,
    image: ImageChoice,
    resolver: Resolver,
    index: Index,
    wheelhouse: Path,
    extra_requires: Sequence[str] = (),
    source_builder: SourceBuilder | None = None,
) -> Strategy:
    """Plan building ``sdist`` again from its own ``[build-system]`` (no wheel to read).

    The backend and requirements are those of the sdist's ``pyproject.toml``
    (``source_dir``, the extracted published sdist; nothing from it is executed), or
    setuptools' legacy default when it declares none, resolved as of the sdist's upload
    time. No archive input is inferred: the caller gives the build its clock.
    """
    pyproject = source_dir / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8", errors="replace") if pyproject.is_file() else None
    try:
        system = read_build_system(text)
    except ValueError as exc:
        raise ResolveError(str(exc)) from None
    notes = [
        "no pure wheel: planned from the sdist's own [build-system]"
        if system.declared
        else "no pure wheel and no [build-system] in the sdist: setuptools' legacy default"
    ]
    requires = (*system.requires, *(r for r in extra_requires if r not in system.requires))
    as_of = sdist.upload_time
    if as_of is None:
        notes.append("the index gave no upload time: build requirements resolved as of now")
    resolved, built, floored = _resolve(
        requires, as_of, image, resolver, index, wheelhouse, source_builder
    )
    notes.extend(floored)
    if built:
        notes.append(_built_note(built))
    return Strategy(
        project=sdist.project,
        version=sdist.version,
        target=sdist.filename,
        distribution="sdist",
        source=PinnedFile(sdist.filename, sdist.url, sdist.sha256),
        backend=BackendPin(generator="", distribution=None, version=None),
        requirements=resolved,
        archive=ArchiveInputs(source_date_epoch=None, build_clock=None),
        image=image.reference,
        image_digest=image.digest,
        python_version=image.python_version,
        resolved_as_of=as_of.isoformat() if as_of else None,
        build_requires=tuple(requires),
        notes=tuple(notes),
        built_from_source=built,
    )
