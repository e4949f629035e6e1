"""The one exception base of the ``scheduler`` package."""

from __future__ import annotations

from rebuilder.errors import RebuilderError


class SchedulerError(RebuilderError):
    """Discovery or dispatch went wrong (a feed answered something unusable, ...)."""


class StaleFeedError(SchedulerError):
    """A feed answered with data older than what was already seen: not used."""


class FeedMissingError(SchedulerError):
    """The index does not offer this feed at all (HTTP 404/405/501): use another one."""
