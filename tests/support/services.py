"""Restarting the machine's real services in fault tests: PostgreSQL, RabbitMQ, Docker.

Each function returns once the service answers again. They need root and the services
installed the way ``scripts/setup`` starts them; ``available()`` says whether they can
be used here (fault tests fail under CI when not, skip elsewhere).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from tests.support.postgres import server_url

# The engines started here outlive the tests (as scripts/setup's would); kept referenced
# so that no "subprocess still running" warning fires when the test ends.
_ENGINES: list[subprocess.Popen[bytes]] = []


def available() -> str | None:
    """Why the services cannot be restarted here, or None when they can."""
    if os.geteuid() != 0:
        return "restarting services needs root"
    for tool in ("pg_ctlcluster", "rabbitmqctl", "dockerd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _wait(what: str, probe: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not come back within {timeout:.0f} s")


def restart_postgres() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
    )

    def answers() -> bool:
        with psycopg.connect(server_url(), connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    _wait("PostgreSQL", answers)


def restart_rabbitmq() -> None:
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
    _wait(
        "RabbitMQ",
        lambda: (
            subprocess.run(
                ["rabbitmqctl", "-q", "await_startup"], capture_output=True, check=False
            ).returncode
            == 0
        ),
    )


def restart_docker() -> None:
    found = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=False)
    for pid in found.stdout.split():
        os.kill(int(pid), signal.SIGTERM)
    _wait(
        "dockerd to stop",
        lambda: (
            subprocess.run(["pidof", "dockerd"], capture_output=True, check=False).returncode != 0
        ),
    )
    with Path("/var/log/rebuilder-dockerd.log").open("ab") as log:
        engine = subprocess.Popen(
            ["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    _ENGINES.append(engine)
    _wait(
        "the Docker engine",
        lambda: (
            subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
        ),
    )
