"""Start, follow and cancel campaigns.

:func:`start` resolves the selection, records the files the database does not know,
creates the campaign with its attempts in one transaction (:meth:`CampaignStarter.create`)
and only then hands the attempts to the broker at :data:`Priority.CAMPAIGN`. A crash
between the commit and the sends loses nothing: the attempts stay queued and unsent,
and the scheduler sends them (``dispatched_at`` is NULL). Everything else is read from
the database each time, so a campaign is followed the same way after any restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from rebuilder.campaigns import CampaignError
from rebuilder.campaigns.model import CampaignRow, CampaignStatus, Created, NewCampaign, Progress
from rebuilder.campaigns.selection import Resolved, Selection, record_picks, resolve
from rebuilder.campaigns.store import CampaignStarter, CampaignStore
from rebuilder.index.model import Index
from rebuilder.worker.queue import Dispatcher, Priority

logger = logging.getLogger(__name__)

MAX_NAME = 200


@dataclass(frozen=True)
class Started:
    campaign_id: int
    resolved: Resolved
    created: Created
    dispatched: int  # attempts handed to the broker now (the rest: by the scheduler)


def start(
    name: str,
    selection: Selection,
    *,
    store: CampaignStarter,
    index: Index,
    dispatcher: Dispatcher | None,
    force: bool = False,
    image: str | None = None,
) -> Started:
    """Select, record, create the campaign and its attempts, then dispatch them."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise CampaignError(f"a campaign needs a name of 1 to {MAX_NAME} characters")
    resolved = resolve(selection, store, index)
    if not resolved.picks:
        raise CampaignError("the selection picked no file; nothing to rebuild")
    files = record_picks(resolved, store)
    created = store.create(
        NewCampaign(
            name=name,
            selection=selection.to_json(),
            files=files,
            findings=resolved.findings,
            force=force,
            image=image,
        )
    )
    dispatched = dispatch(store, dispatcher, created.to_dispatch)
    return Started(created.campaign_id, resolved, created, dispatched)


DISPATCH_NOW = 1000


def dispatch(store: CampaignStarter, dispatcher: Dispatcher | None, attempt_ids: list[int]) -> int:
    """Send committed attempts to the broker and note it; how many were sent.

    Without a dispatcher (no broker configured) nothing is sent: the scheduler sends
    queued attempts that were never dispatched. A send that fails stops here for the
    same reason: what was not noted as sent is sent again by the scheduler.
    """
    if dispatcher is None:
        return 0
    sent: list[int] = []
    try:
        # The most urgent first window now; the scheduler sends the rest as workers make
        # room (see SchedulerConfig.dispatch_window), still ahead of routine work.
        for attempt_id in attempt_ids[:DISPATCH_NOW]:
            dispatcher.enqueue(attempt_id, Priority.CAMPAIGN)
            sent.append(attempt_id)
    except Exception:
        logger.exception(
            "the broker refused a campaign attempt; %s left for the scheduler to send",
            len(attempt_ids) - len(sent),
        )
    finally:
        if sent:
            store.mark_dispatched(sent)
    return len(sent)


def get(store: CampaignStore, campaign_id: int) -> CampaignRow:
    """The campaign, or CampaignError when there is none under this id."""
    row = store.campaign(campaign_id)
    if row is None:
        raise CampaignError(f"no campaign {campaign_id}")
    return row


def status(store: CampaignStore, campaign_id: int) -> tuple[CampaignRow, Progress]:
    """The campaign and its progress (a running campaign found finished is closed)."""
    row = get(store, campaign_id)
    progress = store.progress(campaign_id)
    if row.status is CampaignStatus.RUNNING and progress.finished:
        store.close_finished()
        row = get(store, campaign_id)
    return row, progress


def cancel(store: CampaignStore, campaign_id: int) -> list[int]:
    """Cancel a running campaign: its queued attempts are withdrawn; running ones finish."""
    row = get(store, campaign_id)
    withdrawn = store.cancel(campaign_id)
    if withdrawn is None:
        raise CampaignError(f"campaign {campaign_id} is {row.status.value}, not running")
    return withdrawn


def wait(
    store: CampaignStore,
    campaign_id: int,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    poll_seconds: float = 2.0,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[CampaignRow, Progress]:
    """Follow a campaign until nothing of it is queued or running (or ``timeout``)."""
    deadline = None if timeout is None else clock() + timeout
    while True:
        row, progress = status(store, campaign_id)
        if on_progress is not None:
            on_progress(progress)
        if progress.finished or row.status is not CampaignStatus.RUNNING:
            return row, progress
        if deadline is not None and clock() >= deadline:
            return row, progress
        sleep(poll_seconds)


def closing_hook(store: CampaignStore) -> Callable[[], None]:
    """A scheduler hook that marks done the campaigns with nothing left to run."""

    def close_finished_campaigns() -> None:
        closed = store.close_finished()
        if closed:
            logger.info("campaigns finished: %s", closed)

    return close_finished_campaigns
