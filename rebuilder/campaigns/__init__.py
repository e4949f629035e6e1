"""Incident-response campaigns: select files, rebuild them at top priority, report.

``locks`` reads requirement and lock files, ``selection`` turns a responder's selection
into published files, ``store`` keeps campaigns in PostgreSQL (with an in-memory twin),
``campaign`` starts, follows and cancels them, ``audit`` answers "which of my pinned
dependencies verify?".
"""

from __future__ import annotations

from rebuilder.errors import RebuilderError


class CampaignError(RebuilderError):
    """A campaign could not be selected, started or read (bad selection, unknown id)."""


class LockFileError(CampaignError):
    """A requirements or lock file could not be read."""
