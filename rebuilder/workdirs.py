"""Work folders that name their owner, so that none outlives it.

A rebuild works in a folder of its own under the work root, removed when it ends. A
process killed outright cannot remove it; the folder holds ``.owner`` (host and pid),
and the next process to start on the same host removes the folders of dead owners.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from rebuilder.sandbox.owners import process_alive

logger = logging.getLogger(__name__)

OWNER_FILE = ".owner"


def _remove_tree(path: Path) -> None:
    def retry(function: Callable[..., object], target: str, _exc: object) -> None:
        # A source tree may hold folders without write permission: open them and retry.
        with contextlib.suppress(OSError):
            parent = Path(target).parent
            parent.chmod(parent.stat().st_mode | stat.S_IRWXU)
            Path(target).chmod(Path(target).lstat().st_mode | stat.S_IRWXU)
            function(target)

    shutil.rmtree(path, onerror=retry)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def owned_dir(root: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder under ``root`` marked as this process's; removed on the way out."""
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    owner = {"host": socket.gethostname(), "pid": os.getpid()}
    (path / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
    try:
        yield path
    finally:
        _remove_tree(path)


def sweep_dead(root: Path, alive: Callable[[int], bool] = process_alive) -> list[Path]:
    """Remove the folders under ``root`` whose owner on this host is gone; them."""
    host = socket.gethostname()
    removed: list[Path] = []
    try:
        children = sorted(root.iterdir())
    except OSError:
        return removed
    for child in children:
        try:
            owner = json.loads((child / OWNER_FILE).read_text(encoding="utf-8"))
            pid = int(owner["pid"])
            mine = owner["host"] == host
        except (OSError, ValueError, TypeError, KeyError):
            continue  # not an owned folder (or not one this version wrote)
        if mine and not alive(pid):
            _remove_tree(child)
            removed.append(child)
            logger.info("removed the work folder %s of a dead process (pid %d)", child, pid)
    return removed
