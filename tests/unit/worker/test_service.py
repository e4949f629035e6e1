"""The worker process's helpers that need no services: owner labels, dead owners."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from rebuilder.sandbox.owners import (
    OWNER_HOST_LABEL,
    OWNER_PID_LABEL,
    dead_owners,
    owner_labels,
)


@dataclass
class FakeContainer:
    id: str
    labels: dict[str, str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.attrs = {"Config": {"Labels": self.labels}}


def test_owner_labels_name_this_process() -> None:
    labels = owner_labels()
    assert labels[OWNER_PID_LABEL] == str(os.getpid())
    assert labels[OWNER_HOST_LABEL]


def test_only_containers_of_dead_processes_on_this_host_are_orphans() -> None:
    containers = [
        FakeContainer("live", {OWNER_HOST_LABEL: "h", OWNER_PID_LABEL: "10"}),
        FakeContainer("dead", {OWNER_HOST_LABEL: "h", OWNER_PID_LABEL: "11"}),
        FakeContainer("other-host", {OWNER_HOST_LABEL: "g", OWNER_PID_LABEL: "11"}),
        FakeContainer("no-pid", {OWNER_HOST_LABEL: "h", OWNER_PID_LABEL: "x"}),
        FakeContainer("unlabelled", {}),
    ]
    found = dead_owners(containers, "h", alive=lambda pid: pid == 10)  # type: ignore[arg-type]
    assert [c.id for c in found] == ["dead"]
