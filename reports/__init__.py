"""The public face: status pages, API, reports: not built yet."""
