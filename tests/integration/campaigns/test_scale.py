"""A campaign over thousands of recorded files starts in one transaction; a first window is sent."""

from __future__ import annotations

from rebuilder.campaigns import campaign as campaigns
from rebuilder.campaigns.campaign import DISPATCH_NOW
from rebuilder.campaigns.selection import Selection
from rebuilder.campaigns.store import PostgresCampaignStore
from rebuilder.index.simple import SimpleIndex
from rebuilder.store.db import Pool
from rebuilder.verdict import Verdict
from rebuilder.worker.queue import Priority
from tests.integration.campaigns.conftest import day

FILES = 5_000


class Sent:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Priority]] = []

    def enqueue(self, attempt_id: int, priority: Priority) -> None:
        self.sent.append((attempt_id, priority))


def _seed(pool: Pool, count: int) -> None:
    with pool.connection() as conn, conn.transaction():
        conn.execute("INSERT INTO projects (name) VALUES ('bulk')")
        conn.execute("INSERT INTO releases (project, version) VALUES ('bulk', '1.0')")
        conn.execute(
            """
            INSERT INTO files (release_id, filename, kind, url, sha256, upload_time)
            SELECT r.id, 'bulk-1.0-' || g || '-py3-none-any.whl', 'wheel',
                   'http://127.0.0.1:9/' || g, encode(sha256(g::text::bytea), 'hex'),
                   %s::timestamptz + g * interval '1 second'
            FROM releases r, generate_series(1, %s) AS g
            """,
            (day(2), count),
        )
        # a routine backlog on half of them, at new-release priority
        conn.execute(
            "INSERT INTO attempts (file_id, priority) SELECT id, 5 FROM files WHERE id % 2 = 0"
        )


def test_start_a_campaign_over_5000_files(
    pool: Pool, cstore: PostgresCampaignStore, index: SimpleIndex
) -> None:
    _seed(pool, FILES)
    sent = Sent()
    started = campaigns.start(
        "window",
        Selection(uploaded=(day(2), day(3))),
        store=cstore,
        index=index,
        dispatcher=sent,
    )
    created = started.created
    assert len(created.queued) == FILES // 2 and len(created.adopted) == FILES // 2
    # the first window goes to the broker now; the scheduler sends the rest as room frees
    assert len(sent.sent) == DISPATCH_NOW and {p for _, p in sent.sent} == {Priority.CAMPAIGN}
    with pool.connection() as conn:
        unsent = conn.execute(
            "SELECT count(*) FROM attempts WHERE status = 'queued' AND dispatched_at IS NULL"
        ).fetchone()
    assert unsent == (FILES - DISPATCH_NOW,)
    with pool.connection() as conn:
        low = conn.execute(
            "SELECT count(*) FROM attempts WHERE status = 'queued' AND priority < 9"
        ).fetchone()
    assert low is not None and low[0] == 0  # the backlog's attempts were lifted
    progress = cstore.progress(started.campaign_id)
    assert progress.total == FILES and progress.verdicts[Verdict.MISMATCH] == 0
