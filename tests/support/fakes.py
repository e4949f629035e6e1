"""The test doubles shared by many suites: one of each, so they cannot drift apart.

In-memory stand-ins of the stores live beside their Protocols
(``rebuilder.store.memory``, ``rebuilder.campaigns.memory``) and in
``tests/support/source_checks.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rebuilder.worker.queue import Priority


@dataclass
class FakeDispatcher:
    """A :class:`~rebuilder.worker.queue.Dispatcher` that remembers what it sent.

    ``down`` makes every send fail as a broker that is away does; ``fail_after`` makes
    the sends fail once that many went through.
    """

    sent: list[tuple[int, Priority]] = field(default_factory=list)
    down: bool = False
    fail_after: int | None = None

    def enqueue(self, attempt_id: int, priority: Priority) -> None:
        if self.down or (self.fail_after is not None and len(self.sent) >= self.fail_after):
            raise ConnectionError("broker away")
        self.sent.append((attempt_id, priority))
