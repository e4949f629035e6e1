from __future__ import annotations

import json

from rebuilder.index.model import BuildRequirement, PinnedFile
from rebuilder.plan.strategy import ArchiveInputs, BackendPin, Strategy


def _strategy(sde: int | None) -> Strategy:
    return Strategy(
        project="demo",
        version="1.0",
        target="demo-1.0-py3-none-any.whl",
        distribution="wheel",
        source=PinnedFile("demo-1.0.tar.gz", "http://127.0.0.1/files/demo-1.0.tar.gz", "ab" * 32),
        backend=BackendPin("hatchling 1.27.0", "hatchling", "1.27.0"),
        requirements=(
            BuildRequirement(
                "hatchling",
                "1.27.0",
                PinnedFile("hatchling-1.27.0-py3-none-any.whl", "u", "cd" * 32),
            ),
        ),
        archive=ArchiveInputs(source_date_epoch=sde, build_clock=None if sde else 5, umask=0o002),
        image="sha256:" + "ef" * 32,
        image_digest="sha256:" + "ef" * 32,
        python_version="3.11",
        resolved_as_of="2024-01-01T00:00:00+00:00",
        build_requires=("hatchling==1.27.0",),
    )


def test_strategy_round_trips_through_json() -> None:
    for sde in (1704164646, None):
        strategy = _strategy(sde)
        assert Strategy.from_json(json.loads(strategy.dumps())) == strategy


def test_environment_carries_source_date_epoch_only_when_inferred() -> None:
    assert _strategy(1704164646).env["SOURCE_DATE_EPOCH"] == "1704164646"
    assert "SOURCE_DATE_EPOCH" not in _strategy(None).env
    assert _strategy(None).env["TZ"] == "UTC"
