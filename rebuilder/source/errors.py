"""The exception base of source tracing."""

from __future__ import annotations

from rebuilder.errors import FailureReason, RebuilderError


class SourceError(RebuilderError):
    """The source repository of a release cannot be found, fetched or read."""

    reason = FailureReason.NO_SOURCE


class NoRepositoryError(SourceError):
    """No repository URL could be found for the release (nor configured)."""


class CloneError(SourceError):
    """The repository could not be fetched (unreachable, refused URL, git failed)."""


class SourceLimitError(SourceError):
    """The repository or one of its files is over a limit (size, time, count)."""


class RepositoryUnreachableError(CloneError):
    """The repository's host did not answer (DNS, connection, timeout, server error).

    Says nothing about the release, so it is never a ``no-source`` verdict: the fleet
    retries later, and a one-shot check reports the source as not checked.
    """

    reason = FailureReason.INFRASTRUCTURE
