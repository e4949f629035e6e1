"""Build the production collaborators from the one :class:`Settings` object.

The Docker adapter and the image builder are imported where first used, so that
``check`` reaches its first index request without them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from rebuilder.index.resolve import UvResolver
from rebuilder.index.simple import SimpleIndex
from rebuilder.pipeline import Rebuilder
from rebuilder.plan.interpreter import MATRIX, Interpreter
from rebuilder.plan.planner import ImageChoice
from rebuilder.plan.writer import MetadataCache
from rebuilder.sandbox.model import BuildOutcome, BuildRequest, Sandbox, SandboxLimits
from rebuilder.sandbox.owners import owner_labels, remove_dead_owners
from rebuilder.settings import Settings
from rebuilder.workdirs import sweep_dead

if TYPE_CHECKING:
    from rebuilder.sandbox.image import ImageRef

logger = logging.getLogger(__name__)


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        timeout_seconds=settings.build_timeout,
        memory_bytes=settings.build_memory,
        pids=settings.build_pids,
        cpus=settings.build_cpus,
    )


def build_sandbox_image(settings: Settings) -> ImageRef:
    """Build the local sandbox image now (a no-op when the same one exists)."""
    from rebuilder.sandbox.image import DEFAULT_BASE, build_image  # noqa: PLC0415

    return build_image(base=settings.image_base or DEFAULT_BASE)


def image_choice(settings: Settings) -> ImageChoice:
    """Find (or build, on first use) the sandbox image."""
    from rebuilder.sandbox.image import DEFAULT_BASE, ensure_image  # noqa: PLC0415

    ref = ensure_image(reference=settings.image, base=settings.image_base or DEFAULT_BASE)
    # Run by the immutable image id: a tag moved between planning and building cannot
    # swap the image under a strategy.
    return ImageChoice(
        reference=ref.image_id, digest=ref.digest, python_version=settings.python_version
    )


def interpreter_image(interpreter: Interpreter) -> ImageChoice:
    """The local sandbox image of one interpreter of the matrix, built on first need."""
    from rebuilder.sandbox.image import (  # noqa: PLC0415
        DEFAULT_TOOLS,
        LEGACY_TOOLS,
        ensure_image,
        suite_base,
    )

    tools = DEFAULT_TOOLS if interpreter.key >= (3, 10) else LEGACY_TOOLS
    ref = ensure_image(base=suite_base(interpreter.suite), tools=tools)
    return ImageChoice(
        reference=ref.image_id,
        digest=ref.digest,
        python_version=interpreter.version,
        glibc_minor=int(interpreter.glibc.split(".")[1]),
    )


def production_rebuilder(
    settings: Settings,
    *,
    index_url: str | None = None,
    labels: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> Rebuilder:
    """A :class:`Rebuilder` talking to the real index, uv and Docker (or ``sandbox``)."""
    url = index_url or settings.index_url
    cache = settings.cache_dir
    return Rebuilder(
        index=SimpleIndex(url, cache / "index", page_ttl_seconds=settings.page_ttl),
        resolver=UvResolver(
            url, cache / "uv", platforms={i.version: i.python_platform for i in MATRIX}
        ),
        sandbox=sandbox or docker_sandbox(),
        image=lambda: image_choice(settings),
        # An operator's own image (or base) is the one interpreter there is.
        interpreter_image=None if settings.image or settings.image_base else interpreter_image,
        evidence_root=settings.out_dir,
        work_root=cache / "work",
        limits=sandbox_limits(settings),
        diffoscope_timeout=settings.diffoscope_timeout,
        labels={**owner_labels(), **(labels or {})},
        metadata_cache=MetadataCache(cache / "metadata"),
    )


def docker_sandbox() -> Sandbox:
    """The Docker sandbox (it connects to the engine at its first build)."""
    from rebuilder.sandbox.docker import DockerSandbox  # noqa: PLC0415

    return DockerSandbox()


def check_rebuilder(settings: Settings, index_url: str | None) -> tuple[Rebuilder, SweepFirst]:
    """The rebuilder of a one-shot ``check``, and its sandbox.

    What killed processes left is swept: work folders now, build containers before the
    first build, or when the caller calls ``sandbox.sweep()`` once a release is judged.
    """
    sweep_work_folders(settings)
    sandbox = SweepFirst(docker_sandbox)
    return production_rebuilder(settings, index_url=index_url, sandbox=sandbox), sandbox


def sweep_work_folders(settings: Settings) -> None:
    """Remove the work folders that killed processes of this host left.

    Run at the start of a one-shot check (workers sweep on their own schedule).
    """
    for folder in sweep_dead(settings.cache_dir / "work"):
        logger.debug("swept %s", folder)


def sweep_containers() -> None:
    """Remove the build containers that killed processes of this host left.

    They have stopped at their deadline already; this frees what they still hold.
    """
    from rebuilder.errors import SandboxError  # noqa: PLC0415
    from rebuilder.sandbox.docker import connect  # noqa: PLC0415

    try:
        removed = remove_dead_owners(connect())
    except SandboxError as exc:
        logger.info("no sweep of leftover build containers: %s", exc.diagnostics())
        return
    except Exception as exc:  # noqa: BLE001 - a sweep must never stop a check
        logger.warning("could not sweep leftover build containers: %s", exc)
        return
    if removed:
        logger.info("removed %d build containers left by dead processes", len(removed))


class SweepFirst:
    """A sandbox, made at its first build after sweeping dead processes' build containers.

    ``check`` starts without Docker (a tenth of a second of imports and an engine call
    that a project the index does not know never needs); the check calls :meth:`sweep`
    once a release is judged, for the release that had nothing to build.
    """

    def __init__(self, make: Callable[[], Sandbox]) -> None:
        self._make = make
        self._sandbox: Sandbox | None = None
        self._swept = False

    def sweep(self) -> None:
        """Sweep now, unless this sandbox has swept already."""
        if not self._swept:
            self._swept = True
            sweep_containers()

    def run(self, request: BuildRequest) -> BuildOutcome:
        self.sweep()
        if self._sandbox is None:
            self._sandbox = self._make()
        return self._sandbox.run(request)
