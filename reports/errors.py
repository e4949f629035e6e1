"""The one exception base of the ``reports`` package."""

from __future__ import annotations

from rebuilder.errors import RebuilderError


class ReportsError(RebuilderError):
    """Base of every error the status page and API raise on purpose."""
