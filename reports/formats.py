"""The formats of a campaign report (a module of its own: the command line lists them)."""

from __future__ import annotations

from enum import StrEnum


class ReportFormat(StrEnum):
    MD = "md"
    JSON = "json"
    CSV = "csv"
    HTML = "html"
