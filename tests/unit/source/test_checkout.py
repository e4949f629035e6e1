"""A tree from git takes the modes and times of the maintainer's checkout, as far as the
published files show them (rebuilder.source.checkout)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rebuilder.source.checkout import dress_like_checkout

COMMIT_TIME = 1_700_000_000
SDIST_TIME = 1_600_000_000
ENTRY_TIME = 1_650_000_000


def _write(root: Path, files: dict[str, tuple[int, int]]) -> None:
    for name, (mode, when) in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
        path.chmod(mode)
        os.utime(path, (when, when))


def _mode_time(path: Path) -> tuple[int, int]:
    info = path.stat()
    return stat.S_IMODE(info.st_mode), int(info.st_mtime)


def test_files_of_the_sdist_take_its_modes_and_times_others_a_checkouts(tmp_path: Path) -> None:
    tree, sdist = tmp_path / "tree", tmp_path / "sdist"
    _write(tree, {
        "src/demo/__init__.py": (0o664, COMMIT_TIME),  # git archive's mode and time
        "src/demo/py.typed": (0o664, COMMIT_TIME),  # the sdist lacks it
        "tools/run.sh": (0o775, COMMIT_TIME),  # executable in git, not in the sdist
        "docs/index.rst": (0o664, COMMIT_TIME),  # in no published file
    })  # fmt: skip
    _write(sdist, {"src/demo/__init__.py": (0o644, SDIST_TIME)})
    times = [("demo/py.typed", ENTRY_TIME), ("demo-1.0.dist-info/METADATA", ENTRY_TIME + 9)]
    taken = dress_like_checkout(tree, sdist, umask=0o022, entry_times=times)
    assert taken == 1
    assert _mode_time(tree / "src/demo/__init__.py") == (0o644, SDIST_TIME)
    # a checkout's mode under the original umask; the time the planner gave its entry
    assert _mode_time(tree / "src/demo/py.typed") == (0o644, ENTRY_TIME)
    assert _mode_time(tree / "tools/run.sh") == (0o755, COMMIT_TIME)
    assert _mode_time(tree / "docs/index.rst") == (0o644, COMMIT_TIME)


def test_a_time_matched_by_two_entries_is_not_guessed(tmp_path: Path) -> None:
    tree, sdist = tmp_path / "tree", tmp_path / "sdist"
    _write(tree, {"a/data.txt": (0o664, COMMIT_TIME)})
    sdist.mkdir()
    times = [("data.txt", ENTRY_TIME), ("a/data.txt", ENTRY_TIME + 2)]
    dress_like_checkout(tree, sdist, umask=0o002, entry_times=times)
    assert _mode_time(tree / "a/data.txt") == (0o664, COMMIT_TIME)
    # a suffix counts only on a path boundary
    dress_like_checkout(tree, sdist, umask=0o002, entry_times=[("ta.txt", ENTRY_TIME)])
    assert _mode_time(tree / "a/data.txt") == (0o664, COMMIT_TIME)
