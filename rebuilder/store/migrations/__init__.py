"""Ordered SQL migrations, applied in name order."""
