"""Real build-dependency wheels for the integration tests, fetched once per machine.

``tests/fixtures/build-wheels.txt`` pins them by sha256. ``python -m tests.support.wheelhouse
fetch`` downloads the missing ones with the host's configured pip into
``$REBUILDER_TEST_WHEELHOUSE`` (default ``~/.cache/pypi-rebuilder-tests/wheels``); CI runs it
before the tests. Tests only read that folder and serve the wheels from a
:class:`~tests.support.index_server.FixtureIndex`; they never reach the live index.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from packaging.utils import canonicalize_name

from tests.support.index_server import FixtureFile, FixtureIndex

PINS_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "build-wheels.txt"
ENV_VAR = "REBUILDER_TEST_WHEELHOUSE"
_LINE_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)\s+--hash=sha256:(?P<sha256>[0-9a-f]{64})"
    r"\s+#\s+(?P<filename>\S+\.whl)\s+uploaded\s+(?P<uploaded>\S+)\s*$"
)


@dataclass(frozen=True)
class PinnedWheel:
    """One line of the pins file."""

    name: str  # normalized
    version: str
    sha256: str
    filename: str
    upload_time: datetime  # on the public index, timezone-aware

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


def read_pins(path: Path = PINS_FILE) -> tuple[PinnedWheel, ...]:
    """The pinned wheels, in file order."""
    pins = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE_RE.match(line)
        if m is None:
            raise ValueError(f"{path}:{number}: not a pinned wheel line: {line!r}")
        uploaded = datetime.fromisoformat(m["uploaded"])
        if uploaded.tzinfo is None:
            raise ValueError(f"{path}:{number}: upload time without a timezone")
        pins.append(
            PinnedWheel(
                canonicalize_name(m["name"]), m["version"], m["sha256"], m["filename"], uploaded
            )
        )
    return tuple(pins)


def wheelhouse_dir() -> Path:
    """Where the wheels are kept on this machine."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "pypi-rebuilder-tests" / "wheels"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def missing(pins: Sequence[PinnedWheel], folder: Path) -> list[PinnedWheel]:
    """The pins whose wheel is absent from ``folder`` or does not match its hash."""
    out = []
    for pin in pins:
        path = folder / pin.filename
        if not path.is_file() or _sha256(path) != pin.sha256:
            out.append(pin)
    return out


def _groups(pins: Sequence[PinnedWheel]) -> list[list[PinnedWheel]]:
    # pip refuses two versions of one project in one requirements file.
    groups: list[list[PinnedWheel]] = []
    for pin in pins:
        for group in groups:
            if all(p.name != pin.name for p in group):
                group.append(pin)
                break
        else:
            groups.append([pin])
    return groups


def fetch(folder: Path | None = None, pins: Sequence[PinnedWheel] | None = None) -> Path:
    """Download the missing wheels with the host's pip; verify all of them."""
    folder = folder or wheelhouse_dir()
    pins = read_pins() if pins is None else pins
    folder.mkdir(parents=True, exist_ok=True)
    todo = missing(pins, folder)
    for group in _groups(todo):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
            req.write("".join(p.requirement + "\n" for p in group))
        try:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary",
                    ":all:",
                    "--require-hashes",
                    "--dest",
                    str(folder),
                    "-r",
                    req.name,
                ],
                check=True,
            )
        finally:
            Path(req.name).unlink()
    still = missing(pins, folder)
    if still:
        names = ", ".join(p.filename for p in still)
        raise RuntimeError(f"wheelhouse incomplete after download: {names}")
    return folder


def require(folder: Path | None = None) -> dict[str, Path]:
    """Filename -> path of every pinned wheel; fails the test when any is missing."""
    import pytest  # noqa: PLC0415 - the CLI must not need pytest

    folder = folder or wheelhouse_dir()
    pins = read_pins()
    absent = missing(pins, folder)
    if absent:
        pytest.fail(
            f"test wheelhouse {folder} lacks {', '.join(p.filename for p in absent)}; "
            "run `python -m tests.support.wheelhouse fetch` (CI setup does)",
            pytrace=False,
        )
    return {p.filename: folder / p.filename for p in pins}


def load_into(
    index: FixtureIndex,
    *,
    only: Iterable[str] | None = None,
    upload_times: Mapping[str, datetime] | None = None,
    folder: Path | None = None,
) -> list[FixtureFile]:
    """Publish the pinned wheels on ``index``.

    ``only`` limits them to the given ``name==version`` specs or filenames.
    ``upload_times`` (keyed the same way) overrides the recorded public upload times.
    """
    paths = require(folder)
    wanted = None if only is None else set(only)
    times = dict(upload_times or {})
    published = []
    for pin in read_pins():
        spec = f"{pin.name}=={pin.version}"
        if wanted is not None and spec not in wanted and pin.filename not in wanted:
            continue
        when = times.get(pin.filename, times.get(spec, pin.upload_time))
        data = paths[pin.filename].read_bytes()
        published.append(index.add_file(pin.name, pin.filename, data, when))
    return published


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.wheelhouse")
    parser.add_argument("command", choices=["fetch", "check", "path"])
    parser.add_argument("--dest", type=Path, default=None, help=f"default: ${ENV_VAR} or ~/.cache")
    args = parser.parse_args(argv)
    folder: Path = args.dest or wheelhouse_dir()
    if args.command == "path":
        print(folder)
        return 0
    if args.command == "check":
        absent = missing(read_pins(), folder)
        for pin in absent:
            print(f"missing: {pin.filename}", file=sys.stderr)
        return 1 if absent else 0
    fetch(folder)
    print(f"wheelhouse ready: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
