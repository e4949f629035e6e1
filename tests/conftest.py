"""Hypothesis profiles: the default keeps CI fast; ``--hypothesis-profile=fuzz`` digs deeper."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    max_examples=2_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
