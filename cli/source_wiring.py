"""Build the production source tracers from the one :class:`Settings` object."""

from __future__ import annotations

from cli.wiring import image_choice, interpreter_image, sandbox_limits
from rebuilder.index.model import Index
from rebuilder.index.resolve import UvResolver
from rebuilder.index.simple import SimpleIndex
from rebuilder.plan.interpreter import MATRIX
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.settings import Settings
from rebuilder.source.clone import CloneLimits, GitCloner
from rebuilder.source.fleet import RecordedReleaseTracer
from rebuilder.source.rebuild import GitRebuilder
from rebuilder.source.trace import SourceConfig, SourceTracer


def source_config(settings: Settings) -> SourceConfig:
    return SourceConfig(overrides=settings.source_overrides, mirrors=settings.source_mirrors)


def git_cloner(settings: Settings) -> GitCloner:
    """Bare repositories cached under ``{cache}/git``."""
    limits = CloneLimits(
        max_bytes=settings.source_clone_bytes, timeout_seconds=settings.source_clone_timeout
    )
    return GitCloner(settings.cache_dir / "git", limits)


def git_rebuilder(settings: Settings, index: Index, index_url: str) -> GitRebuilder:
    """The one :class:`GitRebuilder`: the sdist and wheel rebuilt from the tagged tree.

    The wheel from git is built on the interpreter the core would choose for it (the
    matrix, unless the operator configured one image), resolved for that interpreter.
    """
    cache = settings.cache_dir
    return GitRebuilder(
        index=index,
        resolver=UvResolver(
            index_url, cache / "uv", platforms={i.version: i.python_platform for i in MATRIX}
        ),
        sandbox=DockerSandbox(),
        image=lambda: image_choice(settings),
        work_root=cache / "work",
        limits=sandbox_limits(settings),
        interpreter_image=None if settings.image or settings.image_base else interpreter_image,
    )


def production_source_tracer(
    settings: Settings, *, index_url: str | None = None, rebuild: bool = True
) -> SourceTracer:
    """A :class:`SourceTracer` on the real index, git and (with ``rebuild``) Docker."""
    url = index_url or settings.index_url
    cache = settings.cache_dir
    index = SimpleIndex(url, cache / "index", page_ttl_seconds=settings.page_ttl)
    return SourceTracer(
        index=index,
        cloner=git_cloner(settings),
        config=source_config(settings),
        evidence_root=settings.out_dir,
        work_root=cache / "work",
        git_rebuilder=git_rebuilder(settings, index, url) if rebuild else None,
    )


def production_recorded_tracer(
    settings: Settings, *, rebuild: bool = True
) -> RecordedReleaseTracer:
    """A :class:`RecordedReleaseTracer` on the real index, git and (with ``rebuild``) Docker."""
    cache = settings.cache_dir
    index = SimpleIndex(settings.index_url, cache / "index", page_ttl_seconds=settings.page_ttl)
    return RecordedReleaseTracer(
        index=index,
        cloner=git_cloner(settings),
        config=source_config(settings),
        work_root=cache / "work",
        git_rebuilder=git_rebuilder(settings, index, settings.index_url) if rebuild else None,
    )
