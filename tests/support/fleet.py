"""Running the fleet's processes (scheduler, workers) as a user would, for tests and
benchmarks: one environment, one log file per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from rebuilder.store.repository import PostgresStore

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 180.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def source_checks_pending(store: PostgresStore) -> int:
    """How many source checks are not done yet (they run beside the wheels' rebuilds)."""
    with store.connection() as conn:
        row = conn.execute("SELECT count(*) FROM source_checks WHERE status <> 'done'").fetchone()
    return 0 if row is None else int(row[0])


def fleet_env(
    *, database_url: str, broker_url: str, queue: str, index_url: str, root: Path, key: Path
) -> dict[str, str]:
    """The environment of a test fleet: its own database, queue, index and folders."""
    return {
        **os.environ,
        "REBUILDER_DATABASE_URL": database_url,
        "REBUILDER_BROKER_URL": broker_url,
        "REBUILDER_QUEUE_NAME": queue,
        "REBUILDER_INDEX_URL": index_url,
        "REBUILDER_CACHE_DIR": str(root / "cache"),
        "REBUILDER_DATA_DIR": str(root / "fleet"),
        "REBUILDER_SIGNING_KEY": str(key),
        "REBUILDER_WATCH_DEFAULT": "",
        "REBUILDER_POLL_INTERVAL": "1",
        "REBUILDER_PAGE_TTL": "0",
        "REBUILDER_CLAIM_TIMEOUT": "6",
        "REBUILDER_BUILD_TIMEOUT": "60",
        "REBUILDER_LOG_FORMAT": "json",
    }


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process (Linux), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def open_files(pid: int) -> int | None:
    """How many file descriptors a process holds, or None when it is gone."""
    try:
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None


class Fleet:
    """Starts and stops the fleet's processes with one environment."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        name: str,
        *args: str,
        wrap: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``rebuilder ARGS`` as ``name``; ``wrap`` prefixes the command (e.g. to run
        it in another network namespace), ``env`` replaces variables for this process."""
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [*wrap, sys.executable, "-m", "cli", "-v", *args],
                env={**self.env, **(env or {}), "REBUILDER_WORKER_NAME": name},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def stop_all(self) -> dict[str, int]:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = -9
        self.procs.clear()
        return codes

    def log_text(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.logs.iterdir()
        )
