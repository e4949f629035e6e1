"""Only one scheduler leads; a waiting one takes over when the leader's session dies."""

from __future__ import annotations

import random

import psycopg

from rebuilder.store.leader import Leadership


def _key() -> int:
    return random.randrange(1, 2**62)


def test_a_second_scheduler_stays_idle_while_the_first_leads(database_url: str) -> None:
    key = _key()
    first, second = Leadership(database_url, key=key), Leadership(database_url, key=key)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        assert first.is_leader() and not second.is_leader()
        first.release()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()


def test_the_waiting_scheduler_takes_over_when_the_leader_dies(database_url: str) -> None:
    key = _key()
    leader, standby = Leadership(database_url, key=key), Leadership(database_url, key=key)
    try:
        assert leader.try_acquire()
        # the leader's process dies: the server ends its session (as on SIGKILL)
        with psycopg.connect(database_url, autocommit=True) as admin:
            pids = admin.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                (key & 0xFFFFFFFF,),
            ).fetchall()
            assert len(pids) == 1
            admin.execute("SELECT pg_terminate_backend(%s)", (pids[0][0],))
        rounds = iter(range(50))
        assert standby.wait(poll_seconds=0.1, stop=lambda: next(rounds, None) is None)
        assert not leader.is_leader()  # the old leader notices and steps down
    finally:
        leader.release()
        standby.release()
