"""The one exception base of the ``rebuilder`` package.

Every error a user can see derives from :class:`RebuilderError`. Each carries the
*reason class* under which a file's rebuild is recorded as ``failed`` when the error
ends it, so the pipeline never has to guess. The CLI turns them into messages and
exit codes in one place (``cli.main``).
"""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    """Why a file could not be rebuilt (the reason class of a ``failed`` verdict)."""

    NO_SOURCE = "no-source"
    RESOLVE = "resolve"
    BUILD = "build"
    TIMEOUT = "timeout"
    SANDBOX = "sandbox"
    INFRASTRUCTURE = "infrastructure"


class RebuilderError(Exception):
    """Base of every error raised by the rebuilder on purpose."""

    reason: FailureReason = FailureReason.INFRASTRUCTURE

    def diagnostics(self) -> str:
        """A message meant for a person."""
        return str(self)


class UsageError(RebuilderError):
    """The user asked for something malformed (a bad spec, a bad option)."""


class IndexError_(RebuilderError):  # noqa: N801, N818 - trailing underscore avoids the builtin name
    """The package index could not be read or answered something unusable."""


class NotFoundError(IndexError_):
    """The project, release or file does not exist on the index."""

    reason = FailureReason.NO_SOURCE


class IntegrityError(IndexError_):
    """A download did not match the hash the index published for it."""


class ArchiveError(RebuilderError):
    """An archive is malformed, hostile or over the limits; it was not used."""

    reason = FailureReason.SANDBOX


class UnusableSourceError(RebuilderError):
    """The source to build from exists but cannot be used (hostile or malformed sdist)."""

    reason = FailureReason.NO_SOURCE


class ResolveError(RebuilderError):
    """The build requirements could not be resolved or fetched."""

    reason = FailureReason.RESOLVE


class SandboxError(RebuilderError):
    """The sandbox (Docker, the image) could not run the build."""

    reason = FailureReason.INFRASTRUCTURE
