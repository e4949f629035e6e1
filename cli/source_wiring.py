"""Build the production source tracer from the one :class:`Settings` object."""

from __future__ import annotations

from rebuilder.index.resolve import UvResolver
from rebuilder.index.simple import SimpleIndex
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.settings import Settings
from rebuilder.source.clone import CloneLimits, GitCloner
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


def production_source_tracer(
    settings: Settings, *, index_url: str | None = None, rebuild: bool = True
) -> SourceTracer:
    """A :class:`SourceTracer` on the real index, git and (with ``rebuild``) Docker."""
    from cli.wiring import image_choice, sandbox_limits  # noqa: PLC0415 - docker

    url = index_url or settings.index_url
    cache = settings.cache_dir
    index = SimpleIndex(url, cache / "index", page_ttl_seconds=settings.page_ttl)
    git_rebuilder = (
        GitRebuilder(
            index=index,
            resolver=UvResolver(url, cache / "uv"),
            sandbox=DockerSandbox(),
            image=lambda: image_choice(settings),
            work_root=cache / "work",
            limits=sandbox_limits(settings),
        )
        if rebuild
        else None
    )
    return SourceTracer(
        index=index,
        cloner=git_cloner(settings),
        config=source_config(settings),
        evidence_root=settings.out_dir,
        work_root=cache / "work",
        git_rebuilder=git_rebuilder,
    )
