"""Clock replay, in a real interpreter started the way the driver starts a backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rebuilder.sandbox import driver
from rebuilder.sandbox.clockreplay.sitecustomize import SLOWDOWN, _wrap, clock_for

CLOCK = 1_600_000_000
CLOCK_TIME = [2020, 9, 13, 12, 26, 40]

SCRIPT = """\
import json, os, shutil, sys, time, zipfile
old, new, copied, wheel = sys.argv[1:]
with open(new, "w") as f:
    f.write("generated")
shutil.copy2(old, copied)  # a copy keeps the source's mtime, as build_py does
with zipfile.ZipFile(wheel, "w") as zf:
    for path in (old, new, copied):
        zf.write(path, os.path.basename(path))
with zipfile.ZipFile(wheel) as zf:
    times = {i.filename: list(i.date_time) for i in zf.infolist()}
with open(new) as f:
    fstat = os.fstat(f.fileno()).st_mtime
print(json.dumps({
    "times": times, "now": time.time(), "lstat": os.lstat(new).st_mtime, "fstat": fstat,
    "stat_old": os.stat(old).st_mtime,
}))
"""


def test_files_written_during_the_build_carry_the_build_clock(tmp_path: Path) -> None:
    old = tmp_path / "old.py"
    old.write_text("source")
    os.utime(old, (1_500_000_000, 1_500_000_000))
    env = {
        "PATH": os.environ["PATH"],
        "TZ": "UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(driver.CLOCK_REPLAY),
        "REBUILDER_BUILD_CLOCK": str(CLOCK),
        "REBUILDER_BUILD_START_NS": str(time.time_ns()),
    }
    paths = [old, tmp_path / "new.txt", tmp_path / "copied.py", tmp_path / "out.whl"]

    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(completed.stdout)

    assert seen["times"]["new.txt"] == CLOCK_TIME
    assert seen["times"]["old.py"] == [2017, 7, 14, 2, 40, 0]
    assert seen["times"]["copied.py"] == [2017, 7, 14, 2, 40, 0]
    assert seen["lstat"] == seen["fstat"] == CLOCK
    assert seen["stat_old"] == 1_500_000_000
    assert CLOCK <= seen["now"] < CLOCK + 60
    # Only the backend's view changes: the file on disk has its real mtime.
    assert (tmp_path / "new.txt").stat().st_mtime > CLOCK + 10**8


def test_without_the_variables_nothing_changes(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(driver.CLOCK_REPLAY),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        capture_output=True,
        text=True,
        check=True,
    )

    assert abs(float(completed.stdout) - time.time()) < 60


def test_an_open_descriptor_is_found_by_its_path(tmp_path: Path) -> None:
    # wheel's WheelFile.write stamps an entry from os.fstat of the file it opened
    folder = tmp_path / "wheel" / "demo-1.0.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text("Name: demo\n")
    clock_map = {"demo-1.0.dist-info/METADATA": 1000, "demo-1.0.dist-info/RECORD": 2000}
    with (folder / "METADATA").open("rb") as f:
        assert clock_for(f.fileno(), 5, clock_map) == 1000
        assert clock_for(f.fileno(), 5, {}) == 5


def test_clock_map_gives_each_generated_file_its_own_time_by_path_suffix() -> None:
    clock_map = {"demo-1.0.dist-info/top_level.txt": 1000, "demo/_version.py": 2000}
    path = "/scratch/src/build/bdist.linux-x86_64/wheel/demo-1.0.dist-info/top_level.txt"
    assert clock_for(path, 5, clock_map) == 1000
    assert clock_for(b"/scratch/src/build/lib/demo/_version.py", 5, clock_map) == 2000
    assert clock_for("/scratch/src/build/lib/demo/other.py", 5, clock_map) == 5
    assert clock_for(-1, 5, clock_map) == 5  # not an open descriptor: no path
    # setuptools writes metadata to X.egg-info and copies it into the .dist-info folder
    assert clock_for("/scratch/src/src/demo.egg-info/top_level.txt", 5, clock_map) == 1000
    assert clock_for("/scratch/src/demo.egg-info/SOURCES.txt", 5, clock_map) == 5


def test_a_replayed_stat_kept_as_a_class_attribute_is_not_bound_as_a_method(
    tmp_path: Path,
) -> None:
    # pathlib before Python 3.11 keeps os.stat on its accessor class and calls it
    # through an instance: a plain function would receive the instance as the path.
    written = tmp_path / "written.txt"
    written.write_text("x")
    replayed = _wrap(os.stat, CLOCK, time.time_ns() - 10**9, {})

    class Accessor:
        stat = replayed

    assert Accessor().stat(str(written)).st_mtime == CLOCK
    assert replayed.__name__ == "stat"


def test_the_replayed_wall_clock_runs_slower_than_real_time(tmp_path: Path) -> None:
    # RECORD is stamped with "now" at the end of a build of a few seconds: it must
    # still land on the build clock's two-second slot.
    script = "import time; a = time.time(); time.sleep(1.0); print(time.time() - a)"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(driver.CLOCK_REPLAY),
        "REBUILDER_BUILD_CLOCK": str(CLOCK),
        "REBUILDER_BUILD_START_NS": str(time.time_ns()),
    }
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    advanced = float(completed.stdout)
    assert 0 < advanced < 2.0 / SLOWDOWN
