"""Incident-response campaigns: select files, rebuild them at top priority, report.

``model`` holds a campaign's records, ``locks`` reads requirement and lock files,
``selection`` turns a responder's selection into published files, ``store`` keeps
campaigns in PostgreSQL (``memory``: the in-memory stand-in for tests), ``campaign``
starts, follows and cancels them, ``audit`` answers "which of my pinned dependencies
verify?". Their pages and API are ``reports.campaign_routes``, their commands
``cli.campaign``.
"""

from __future__ import annotations

from rebuilder.errors import RebuilderError


class CampaignError(RebuilderError):
    """A campaign could not be selected, started or read (bad selection, unknown id)."""


class LockFileError(CampaignError):
    """A requirements or lock file could not be read."""
