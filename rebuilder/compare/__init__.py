"""Comparing a published file with its rebuild: bytes, then stabilized archives."""
