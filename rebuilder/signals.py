"""Stopping long-running processes (worker, scheduler) cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)


def stop_on_signals(stop: threading.Event) -> None:
    """Set ``stop`` on SIGTERM/SIGINT (only possible from the main thread; else a no-op)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        del frame
        logger.info("signal %d: stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
