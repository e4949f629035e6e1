"""Storage of the fleet: PostgreSQL (state, the transparency log) and evidence blobs.

The rest of the code talks to the small Protocols of :mod:`rebuilder.store.protocols`
(one per consumer); the PostgreSQL
implementation is :class:`rebuilder.store.repository.PostgresStore`, its in-memory twin
for unit tests :class:`rebuilder.store.memory.MemoryStore`. Nothing here is imported
eagerly, so the transparency log can be used without the fleet's tables.
"""

from __future__ import annotations

from rebuilder.errors import FailureReason, RebuilderError


class StoreError(RebuilderError):
    """The database or the blob store could not do what was asked (transient or broken)."""

    reason = FailureReason.INFRASTRUCTURE
