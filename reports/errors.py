"""The one exception base of the ``reports`` package."""

from __future__ import annotations

from rebuilder.errors import RebuilderError


class ReportsError(RebuilderError):
    """Base of every error the status page and API raise on purpose."""


class BadCursorError(ReportsError):
    """A pagination cursor that this API did not hand out (or from another list)."""
