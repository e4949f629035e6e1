"""Work folders, one per attempt and worker: a dead holder's is removed, a live one's never."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from rebuilder.worker.localruns import OWNER_FILE, claim_folder, remove_dead_folders


def _owned(root: Path, name: str, host: str, pid: int) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / OWNER_FILE).write_text(f"{host} {pid}\n")
    return folder


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_folders_of_dead_processes_of_this_host_are_removed(tmp_path: Path) -> None:
    host = socket.gethostname()
    mine = tmp_path / "attempt-7.me"
    claim_folder(mine)
    assert (mine / OWNER_FILE).read_text().split() == [host, str(os.getpid())]
    dead = _owned(tmp_path, "attempt-7.killed", host, _dead_pid())
    alive = _owned(tmp_path, "attempt-7.cut-off", host, os.getppid())  # alive, lost its claim
    remote = _owned(tmp_path, "attempt-7.elsewhere", "another-host", _dead_pid())
    unknown = tmp_path / "attempt-7.unknown"
    unknown.mkdir()
    other = _owned(tmp_path, "attempt-8.killed", host, _dead_pid())
    removed = remove_dead_folders(tmp_path, "attempt-7.*", keep=mine)
    assert removed == [dead]
    assert not dead.exists()
    assert all(f.is_dir() for f in (mine, alive, remote, unknown, other))


def test_a_fresh_claim_starts_empty(tmp_path: Path) -> None:
    folder = tmp_path / "attempt-1.w"
    folder.mkdir()
    (folder / "stale").write_text("x")
    claim_folder(folder)
    assert sorted(p.name for p in folder.iterdir()) == [OWNER_FILE]
