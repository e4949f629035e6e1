"""Start-up time of the ``rebuilder`` command: ``--help``, and ``check`` up to its verdict.

Each command is run ``--runs`` times in a fresh process; the median and the fastest
wall-clock times, and the median CPU time (user + system, steadier on a busy machine),
are printed as a Markdown table. ``check`` runs against an empty
index served on a loopback port (every project is 404), so it does all of its start-up
(settings, logging, TLS trust, the index client, uv's resolver, the pipeline) and one
request, then exits 2 ("not checked") without building anything. What it loads at first
need (Docker at the first build, the signing key at the first signature, the page parser
at the first page) an unknown project never reaches.

Python's cached bytecode matters: with ``PYTHONDONTWRITEBYTECODE=1`` and no
``__pycache__`` in the tree every run compiles the project's modules again (about 0.05 s
of ``check``); an installed package, or a tree Python may write its caches in, does not.

    .venv/bin/python -m benchmarks.startup --runs 21
    .venv/bin/python -m benchmarks.startup --rebuilder "python -m rebuilder"  # another tree
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Empty(BaseHTTPRequestHandler):
    """An index that knows no project."""

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(argv: Sequence[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each run."""
    walls, cpus = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), _cpu()
        subprocess.run(
            argv, check=False, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return walls, cpus


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument(
        "--rebuilder",
        default=str(Path(sys.executable).with_name("rebuilder")),
        help="the command to time (default: this environment's rebuilder script)",
    )
    parser.add_argument("--report", type=Path, help="also write the table here (Markdown)")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Empty)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "REBUILDER_INDEX_URL": f"http://127.0.0.1:{server.server_port}/simple/",
            "REBUILDER_CACHE_DIR": str(Path(tmp) / "cache"),
            "REBUILDER_SIGNING_KEY": str(Path(tmp) / "key.pem"),
        }
        out = str(Path(tmp) / "out")
        commands = {
            "rebuilder --help": ["--help"],
            "rebuilder check (empty index)": ["check", "--out", out, "demo==1.0"],
        }
        lines = ["| command | median | fastest | median CPU |", "|---|---|---|---|"]
        for name, command in commands.items():
            walls, cpus = _time([*shlex.split(args.rebuilder), *command], env, args.runs)
            lines.append(
                f"| `{name}` | {statistics.median(walls):.3f} s | {min(walls):.3f} s "
                f"| {statistics.median(cpus):.3f} s |"
            )
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if args.report is not None:
        args.report.write_text(table, encoding="utf-8")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
