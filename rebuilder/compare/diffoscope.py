"""Run diffoscope on a mismatch, capped in time and report size, never failing the check.

By default both wheels are first rewritten with every stabilizer applied, so the report
shows the content differences that made the verdict, not timestamp noise. The inputs
are staged as ``published/<name>`` and ``rebuilt/<name>`` in a scratch folder, so the
reports name them by role and not by a path of the machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rebuilder.archive.zipread import read_zip
from rebuilder.compare.judge import stabilized_bytes
from rebuilder.errors import ArchiveError

logger = logging.getLogger(__name__)

TEXT_REPORT = "diffoscope.txt"
HTML_REPORT = "diffoscope.html"
_MESSAGE_CHARS = 2000


class DiffoscopeStatus(StrEnum):
    """How a diffoscope run ended."""

    OK = "ok"  # ran, found no difference
    DIFFERENCES = "differences"  # ran, found differences (exit status 1): the usual case
    TIMED_OUT = "timed-out"
    ERROR = "error"
    MISSING = "missing"


@dataclass(frozen=True)
class DiffoscopeReport:
    """The outcome of one run; report paths are set only for files that exist."""

    status: DiffoscopeStatus
    message: str = ""
    text_report: Path | None = None
    html_report: Path | None = None
    exit_code: int | None = None
    seconds: float = 0.0


def find_diffoscope() -> str | None:
    """The diffoscope next to the running interpreter (the venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "diffoscope"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("diffoscope")


def run_diffoscope(
    published: Path,
    rebuilt: Path,
    out_dir: Path,
    *,
    timeout_seconds: float = 120.0,
    max_report_bytes: int = 10 * 1024 * 1024,
    executable: str | None = None,
    stabilize: bool = True,
) -> DiffoscopeReport:
    """Write ``diffoscope.txt`` and ``diffoscope.html`` comparing the two files into ``out_dir``.

    Never raises for diffoscope's own trouble: a missing tool, a crash or a timeout (the
    process group is killed) is reported in the returned status and message.
    """
    program = executable or find_diffoscope()
    if program is None:
        return DiffoscopeReport(DiffoscopeStatus.MISSING, "diffoscope is not installed")
    out_dir.mkdir(parents=True, exist_ok=True)
    text, html = out_dir / TEXT_REPORT, out_dir / HTML_REPORT
    with tempfile.TemporaryDirectory(prefix="diffoscope-") as scratch:
        work = Path(scratch)
        inputs = [
            _stage(path, work / role, stabilize=stabilize)
            for role, path in (("published", published), ("rebuilt", rebuilt))
        ]
        command = [
            program,
            "--no-progress",
            "--text-color=never",
            f"--max-report-size={max_report_bytes}",
            f"--max-text-report-size={max_report_bytes}",
            f"--text={text.resolve()}",
            f"--html={html.resolve()}",
            *inputs,
        ]
        report = _run(command, work, timeout_seconds)
    return DiffoscopeReport(
        report.status,
        report.message,
        text if text.is_file() else None,
        html if html.is_file() else None,
        report.exit_code,
        report.seconds,
    )


def _stage(path: Path, folder: Path, *, stabilize: bool) -> str:
    """Copy (or stabilize) ``path`` into ``folder``; return its path relative to the scratch."""
    folder.mkdir()
    target = folder / path.name
    if stabilize:
        try:
            target.write_bytes(stabilized_bytes(read_zip(path)))
        except ArchiveError as exc:
            logger.info("diffoscope gets %s as is: %s", path.name, exc.diagnostics())
        else:
            return f"{folder.name}/{target.name}"
    shutil.copyfile(path, target)
    return f"{folder.name}/{target.name}"


def _run(command: list[str], cwd: Path, timeout_seconds: float) -> DiffoscopeReport:
    start = time.monotonic()
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout kills its children
        )
    except OSError as exc:
        return DiffoscopeReport(DiffoscopeStatus.MISSING, f"cannot start diffoscope: {exc}")
    try:
        output, _ = process.communicate(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        seconds = time.monotonic() - start
        message = f"diffoscope stopped after {timeout_seconds:g} s"
        return DiffoscopeReport(DiffoscopeStatus.TIMED_OUT, message, seconds=seconds)
    seconds = time.monotonic() - start
    message = output.decode("utf-8", errors="replace")[-_MESSAGE_CHARS:].strip()
    status = {0: DiffoscopeStatus.OK, 1: DiffoscopeStatus.DIFFERENCES}.get(
        process.returncode, DiffoscopeStatus.ERROR
    )
    if status is DiffoscopeStatus.ERROR:
        logger.warning("diffoscope exited with %s: %s", process.returncode, message)
    return DiffoscopeReport(status, message, exit_code=process.returncode, seconds=seconds)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.killpg(process.pid, signal.SIGKILL)
