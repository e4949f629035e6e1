"""The sandbox's own init: PID 1 of every build container, holding the limits itself.

Started as ``python -I warden.py CONF_JSON COMMAND...`` (the standard library only, like
the driver). It runs COMMAND (the build driver) in a session of its own and, without
any help from the process that started the container:

* ends everything at the wall-clock deadline (``kill(-1, SIGKILL)``: as PID 1 that
  reaches every other process of the container, whatever session or group it made),
  then exits, so that the container stops even when its starter is gone;
* watches ``/out``, a tmpfs with its own byte and inode limits, as the kernel counts it
  (files unlinked but still open included) and ends the build when it goes over;
* reaps every orphan (it is the init of the container's pid namespace);
* once the driver is done and nothing else runs, sends the result and the built file
  to the host through CHANNEL, a named pipe (nothing reaches the host's disk but what
  the host reader takes, within its own cap).

Channel format: one JSON line (``ending``, ``exit_code``, ``detail``, ``result``,
``artifact``, ``size``) then ``size`` bytes of the artifact. ``ending`` is ``exited``,
``timeout`` or ``output-limit``. The build runs as the same user and can write to the
pipe too: anything it adds makes the stream unreadable, which the host takes as a
failed build, never as a result.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_TIMEOUT = 124
EXIT_OUTPUT_LIMIT = 125
POLL_SECONDS = 0.02  # statvfs and waitpid: cheap enough to catch a short burst
SEND_SECONDS = 120.0  # the longest the host may take to read the channel
HEADER_LIMIT = 1024**2


def _reap(driver: int) -> int | None:
    """Reap every finished child; the driver's exit code once it is among them."""
    code = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return code
        if pid == 0:
            return code
        if pid == driver:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code


def _kill_all(group: int | None = None) -> None:
    """SIGKILL every other process of the container and reap them.

    Only PID 1 (the init of the container's own pid namespace) signals everyone; run
    anywhere else (a test on a host), only the driver's process group is killed.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpid() == 1:
            os.kill(-1, signal.SIGKILL)
        elif group is not None:
            os.killpg(group, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def over_limits(out: str, max_bytes: int, max_files: int) -> str | None:
    """What ``out`` holds beyond its budget, as the kernel counts it; None when within."""
    try:
        fs = os.statvfs(out)
    except OSError as exc:
        return f"the output folder cannot be measured: {exc}"
    used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
    files = fs.f_files - fs.f_ffree - 1  # the folder itself
    if used > max_bytes:
        return f"output over the limit of {max_bytes} bytes (at least {used} written)"
    if files > max_files:
        return f"output over the limit of {max_files} files (at least {files} made)"
    return None


def _read_result(out: Path) -> dict[str, Any] | None:
    path = out / "result.json"
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > HEADER_LIMIT // 2:
            return None
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _artifact(out: Path, result: dict[str, Any] | None) -> Path | None:
    name = result.get("artifact") if result else None
    if not isinstance(name, str) or Path(name).name != name or name[:1] in ("", "."):
        return None
    path = out / name
    return path if path.is_file() and not path.is_symlink() else None


def _write_all(fd: int, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the host did not read the channel")
        _, ready, _ = select.select([], [fd], [], min(left, 1.0))
        if not ready:
            continue
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue


def send(channel: str, header: dict[str, Any], artifact: Path | None) -> None:
    """Write the header and the artifact to the host's reader (if one still listens)."""
    try:
        fd = os.open(channel, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            return  # nobody reads: the starter is gone
        raise
    deadline = time.monotonic() + SEND_SECONDS
    try:
        _write_all(fd, json.dumps(header, sort_keys=True).encode() + b"\n", deadline)
        if artifact is not None:
            with artifact.open("rb") as f:
                while chunk := f.read(1024**2):
                    _write_all(fd, chunk, deadline)
    except (OSError, TimeoutError) as exc:
        print(f"[rebuilder-warden] could not send the result: {exc}", flush=True)
    finally:
        os.close(fd)


_DRIVER_GROUP: list[int] = []


def _on_term(signum: int, frame: object) -> None:
    del frame
    _kill_all(_DRIVER_GROUP[0] if _DRIVER_GROUP else None)
    os._exit(128 + signum)


def run(conf: dict[str, Any], command: Sequence[str]) -> int:
    """Run ``command`` under the limits of ``conf``; the container's exit code."""
    signal.signal(signal.SIGTERM, _on_term)  # the engine stopping the container
    out = str(conf["out"])
    deadline = time.monotonic() + float(conf["timeout_seconds"])
    pid = os.fork()
    if pid == 0:  # the driver: its own session, default signal handling
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.setsid()
            os.execv(command[0], list(command))  # noqa: S606 - our own driver, no shell
        finally:
            os._exit(127)
    _DRIVER_GROUP.append(pid)  # setsid: the driver leads its own group
    ending, detail, code = "exited", "", None
    while True:
        code = _reap(pid)
        if code is not None:
            break
        over = over_limits(out, int(conf["output_bytes"]), int(conf["output_files"]))
        if over is not None:
            ending, detail = "output-limit", over
            break
        if time.monotonic() >= deadline:
            ending = "timeout"
            detail = f"wall-clock limit of {float(conf['timeout_seconds']):g}s hit"
            break
        time.sleep(POLL_SECONDS)
    if ending == "exited":
        # What is still running (daemons the build left) may hold unlinked files open.
        over = over_limits(out, int(conf["output_bytes"]), int(conf["output_files"]))
        if over is not None:
            ending, detail = "output-limit", over
    _kill_all(pid)
    print(f"[rebuilder-warden] {ending}" + (f": {detail}" if detail else ""), flush=True)
    result = _read_result(Path(out)) if ending == "exited" else None
    artifact = _artifact(Path(out), result)
    header = {
        "ending": ending,
        "exit_code": code,
        "detail": detail,
        "result": result,
        "artifact": artifact.name if artifact else None,
        "size": artifact.stat().st_size if artifact else 0,
    }
    send(str(conf["channel"]), header, artifact)
    if ending == "timeout":
        return EXIT_TIMEOUT
    if ending == "output-limit":
        return EXIT_OUTPUT_LIMIT
    return int(code or 0) & 0xFF


def main(argv: Sequence[str]) -> int:
    return run(json.loads(argv[1]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
