"""Who started a build container, and sweeping those whose starter is gone.

Every build container carries its starter's host name and pid as labels (a worker, or a
one-shot ``rebuilder check``). A starter killed outright (SIGKILL, OOM, a cancelled CI
job) cannot remove its container; the next starter on the same host does, at once. The
container has stopped by itself at its deadline already (the warden is its PID 1): the
sweep frees what a stopped container still holds (its log, its name).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rebuilder.sandbox.docker import Container, DockerClient

logger = logging.getLogger(__name__)

OWNER_HOST_LABEL = "org.pypi-rebuilder.owner-host"
OWNER_PID_LABEL = "org.pypi-rebuilder.owner-pid"


def owner_labels() -> dict[str, str]:
    """Labels naming this process on the build containers it starts."""
    return {OWNER_HOST_LABEL: socket.gethostname(), OWNER_PID_LABEL: str(os.getpid())}


def process_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host (anyone's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


def dead_owners(
    containers: Sequence[Container], host: str, alive: Callable[[int], bool]
) -> list[Container]:
    """The build containers started on ``host`` by a process that no longer exists."""
    dead = []
    for container in containers:
        labels = container.attrs.get("Config", {}).get("Labels") or {}
        if labels.get(OWNER_HOST_LABEL) != host:
            continue
        try:
            pid = int(labels.get(OWNER_PID_LABEL, ""))
        except ValueError:
            continue
        if not alive(pid):
            dead.append(container)
    return dead


def remove_dead_owners(client: DockerClient) -> list[str]:
    """Remove the build containers of this host's dead starters; their ids."""
    from rebuilder.sandbox.docker import ROLE_BUILD, ROLE_LABEL  # noqa: PLC0415 - a cycle

    host = socket.gethostname()
    builds = client.containers.list(
        all=True, filters={"label": [f"{ROLE_LABEL}={ROLE_BUILD}", f"{OWNER_HOST_LABEL}={host}"]}
    )
    removed = []
    for container in dead_owners(builds, host, process_alive):
        container.remove(force=True)
        removed.append(container.id)
        logger.info("removed build container %s of a dead process", container.id[:12])
    return removed
