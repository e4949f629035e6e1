"""The warden's protocol with the host, run as a plain process (not PID 1: then it only
ever kills the driver's own process group)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rebuilder.sandbox import warden
from rebuilder.sandbox.docker import ChannelReader, Delivery, unpack_channel

HUGE = 10**18  # the host's own folder stands in for /out: its usage is not the build's


def _run(tmp_path: Path, timeout: float, driver: str) -> tuple[int, Delivery | None, Path]:
    out, host = tmp_path / "out", tmp_path / "host"
    out.mkdir()
    host.mkdir()
    channel = tmp_path / "channel"
    os.mkfifo(channel)
    conf = {
        "timeout_seconds": timeout, "out": str(out), "output_bytes": HUGE,
        "output_files": HUGE, "channel": str(channel),
    }  # fmt: skip
    reader = ChannelReader(channel, tmp_path / "received", 1024**2)
    reader.start()
    command = [sys.executable, "-I", warden.__file__, json.dumps(conf)]
    code = subprocess.run([*command, sys.executable, "-c", driver], check=False).returncode
    reader.finish()
    return code, unpack_channel(tmp_path / "received", host), host


def test_a_driver_past_the_deadline_is_killed_and_reported(tmp_path: Path) -> None:
    started = time.monotonic()
    code, delivery, host = _run(tmp_path, 0.5, "import time; time.sleep(60)")

    assert code == warden.EXIT_TIMEOUT
    assert time.monotonic() - started < 10
    assert delivery == Delivery("timeout", "wall-clock limit of 0.5s hit")
    assert list(host.iterdir()) == []


def test_the_result_and_the_artifact_reach_the_host(tmp_path: Path) -> None:
    out = tmp_path / "out"
    driver = (
        f"import json, pathlib; out = pathlib.Path({str(out)!r})\n"
        "(out / 'demo-1.0-py3-none-any.whl').write_bytes(b'PK' * 1000)\n"
        "(out / 'result.json').write_text(json.dumps("
        "{'status': 'ok', 'artifact': 'demo-1.0-py3-none-any.whl'}))\n"
    )

    code, delivery, host = _run(tmp_path, 30.0, driver)

    assert code == 0
    assert delivery == Delivery("exited", "")
    assert (host / "demo-1.0-py3-none-any.whl").read_bytes() == b"PK" * 1000
    assert json.loads((host / "result.json").read_text())["status"] == "ok"


def test_over_limits_counts_bytes_and_files(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10)
    assert warden.over_limits(str(tmp_path), HUGE, HUGE) is None
    assert "bytes" in (warden.over_limits(str(tmp_path), 0, HUGE) or "")
    assert "files" in (warden.over_limits(str(tmp_path), HUGE, 0) or "")
