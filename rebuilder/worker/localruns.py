"""What this worker process is running now, across its threads.

A worker names itself once for all its threads, so the database claim alone cannot tell
two threads of one worker apart: a message held twice by the same process (a
redelivery next to the original) must run once. Runners hold the job id here for the
length of the run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


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
