"""The public face: the status pages and JSON API (``reports.app``), campaign reports."""
