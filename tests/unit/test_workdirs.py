"""Work folders name their owner; the next process removes those of dead owners."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from rebuilder.workdirs import OWNER_FILE, owned_dir, sweep_dead


def _folder(root: Path, name: str, host: str, pid: int) -> Path:
    path = root / name
    (path / "src" / "locked").mkdir(parents=True)
    (path / OWNER_FILE).write_text(json.dumps({"host": host, "pid": pid}))
    (path / "src" / "locked" / "f").write_text("x")
    (path / "src" / "locked").chmod(0o500)  # a source tree may ship such folders
    return path


def test_an_owned_folder_names_this_process_and_goes_away(tmp_path: Path) -> None:
    with owned_dir(tmp_path, "rebuild-") as work:
        owner = json.loads((work / OWNER_FILE).read_text())
        assert owner == {"host": socket.gethostname(), "pid": os.getpid()}
    assert not work.exists()


def test_only_the_folders_of_dead_owners_on_this_host_are_swept(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = _folder(tmp_path, "rebuild-dead", host, 11)
    live = _folder(tmp_path, "rebuild-live", host, 10)
    elsewhere = _folder(tmp_path, "rebuild-elsewhere", "another-host", 11)
    (tmp_path / "unowned").mkdir()

    removed = sweep_dead(tmp_path, alive=lambda pid: pid == 10)

    assert removed == [dead]
    assert not dead.exists()
    assert live.exists() and elsewhere.exists() and (tmp_path / "unowned").exists()


def test_a_missing_root_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert sweep_dead(tmp_path / "absent") == []
