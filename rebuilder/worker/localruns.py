"""What the job runners of a worker share: the jobs this process holds, heartbeats.

What this worker process is running now, across its threads.

A worker names itself once for all its threads, so the database claim alone cannot tell
two threads of one worker apart: a message held twice by the same process (a
redelivery next to the original) must run once. Runners hold the job id here for the
length of the run.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rebuilder.errors import RebuilderError

logger = logging.getLogger(__name__)


class LocalRuns:
    """A set of job ids held by the threads of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[int] = set()

    @contextmanager
    def hold(self, job_id: int) -> Iterator[bool]:
        """Yield True while this thread holds ``job_id``; False if another thread does."""
        with self._lock:
            if job_id in self._held:
                taken = False
            else:
                self._held.add(job_id)
                taken = True
        try:
            yield taken
        finally:
            if taken:
                with self._lock:
                    self._held.discard(job_id)

    def busy(self) -> bool:
        """True while any job is held."""
        with self._lock:
            return bool(self._held)


@contextmanager
def beating(beat: Callable[[], None], every: float, name: str) -> Iterator[None]:
    """Call ``beat`` every ``every`` seconds from a thread while the block runs.

    A beat that fails (the database away) is logged; the next one tries again.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                beat()
            except RebuilderError as exc:
                logger.warning("%s failed: %s", name, exc)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def relative_evidence(evidence: str | None, root: Path) -> str | None:
    """The evidence folder's name below a job's work folder (the folder is deleted)."""
    if evidence is None:
        return None
    try:
        return Path(evidence).relative_to(root).as_posix()
    except ValueError:
        return Path(evidence).name


OWNER_FILE = ".owner"


def claim_folder(folder: Path) -> None:
    """Make ``folder`` (fresh) and note this process as its owner (host and pid)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")


def _owner_alive(folder: Path) -> bool:
    """False only when the folder's owner is known dead: a process of this host that is gone."""
    try:
        host, pid = (folder / OWNER_FILE).read_text(encoding="utf-8").split()
        number = int(pid)
    except (OSError, ValueError):
        return True  # unknown owner: leave it alone
    if host != socket.gethostname():
        return True  # another host's process: it cleans up after itself
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_folders(root: Path, pattern: str, keep: Path) -> list[Path]:
    """Remove the folders matching ``pattern`` under ``root`` whose owner died (not ``keep``).

    A folder of a live process is never removed, even when that process lost its claim:
    it is still writing there, and it removes the folder itself when it stops.
    """
    removed = []
    if root.is_dir():
        for folder in root.glob(pattern):
            if folder != keep and folder.is_dir() and not _owner_alive(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed
