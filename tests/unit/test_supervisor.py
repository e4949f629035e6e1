"""The one-machine supervisor: children started, restarted with a growing delay, stopped."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from cli.supervisor import Child, plan_children, supervise


def test_the_plan_has_a_scheduler_the_workers_and_the_web_app(tmp_path: Path) -> None:
    children = plan_children(workers=3, web=True, log_dir=tmp_path, env={"A": "1"}, verbose=1)
    assert [c.name for c in children] == ["scheduler", "worker-1", "worker-2", "worker-3", "web"]
    assert children[1].argv[-1] == "worker" and "-v" in children[1].argv
    names = {c.env["REBUILDER_WORKER_NAME"] for c in children[1:4]}
    assert len(names) == 3  # every worker has its own name
    assert all(c.env["REBUILDER_LOG_FORMAT"] == "json" and c.env["A"] == "1" for c in children)
    assert plan_children(workers=1, web=False, log_dir=tmp_path, env={}, verbose=0)[-1].name == (
        "worker-1"
    )


def _child(tmp_path: Path, name: str, code: str) -> Child:
    return Child(name, [sys.executable, "-c", code], {}, tmp_path / f"{name}.log")


def test_a_dying_child_is_restarted_and_all_stop_on_request(tmp_path: Path) -> None:
    counter = tmp_path / "starts"
    crasher = _child(
        tmp_path,
        "crasher",
        f"import pathlib; p = pathlib.Path({str(counter)!r}); "
        "p.write_text(str(int(p.read_text() or 0) + 1) if p.exists() else '1'); "
        "print('crashing', flush=True); raise SystemExit(3)",
    )
    steady = _child(tmp_path, "steady", "import time; time.sleep(60)")
    stop = threading.Event()
    clock = {"t": 0.0}

    def fake_clock() -> float:
        clock["t"] += 1.0  # every poll lets a second pass
        return clock["t"]

    def stop_later() -> None:
        while not counter.exists() or int(counter.read_text() or 0) < 3:
            threading.Event().wait(0.05)
        stop.set()

    watcher = threading.Thread(target=stop_later)
    watcher.start()
    supervise([crasher, steady], stop, clock=fake_clock, poll_seconds=0.05)
    watcher.join()
    assert int(counter.read_text()) >= 3  # restarted after each crash
    assert crasher.restarts >= 2
    assert steady.process is not None and steady.process.returncode is not None  # stopped
    assert "crashing" in (tmp_path / "crasher.log").read_text()
