"""Hostile builds through the whole check: each ends as `failed` with a clear reason
class, leaks nothing, and the next release is checked normally (issue 8, item 1).

The sdists use an in-tree backend whose `build_wheel` misbehaves on purpose.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest

from cli.main import main
from rebuilder.sandbox.docker import ROLE_BUILD, ROLE_LABEL, DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.sandbox.model import BuildRequest, BuildStatus
from rebuilder.sandbox.owners import OWNER_PID_LABEL
from tests.support.dists import SdistSpec, in_tree_backend_members, make_wheel, write_sdist
from tests.support.index_server import FixtureIndex

pytestmark = pytest.mark.docker
SECRET = "hunter2-do-not-leak"  # noqa: S105 - a canary, not a credential


def _publish_hostile(index: FixtureIndex, tmp: Path, version: str, prelude: str) -> None:
    sdist = write_sdist(
        tmp / f"demo-{version}.tar.gz",
        SdistSpec("demo", version, in_tree_backend_members(version=version, build_prelude=prelude)),
    )
    wheel = make_wheel(tmp, "demo", version, generator="in-tree")
    now = datetime.now(UTC)
    index.add_file("demo", sdist.name, sdist.read_bytes(), now)
    index.add_file("demo", wheel.name, wheel.read_bytes(), now)


def _check(
    spec: str, index: FixtureIndex, tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, dict[str, Any]]:
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp / "cache"))
    monkeypatch.setenv("REBUILDER_BUILD_TIMEOUT", "10")
    monkeypatch.setenv("REBUILDER_TEST_SECRET", SECRET)  # the host's environment
    code = main(["check", spec, "--index-url", index.url, "--out", str(tmp / "out"), "--json"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    return code, next(r for r in lines if r["filename"].endswith(".whl"))


@pytest.mark.parametrize(
    ("prelude", "reason_class", "log_says"),
    [
        (
            "import socket\nsocket.create_connection(('127.0.0.1', INDEX_PORT), timeout=3)",
            "build",
            "Connection refused",
        ),
        ("import time\ntime.sleep(3600)", "timeout", ""),
        (
            "import os\nprint('ENV', sorted(os.environ.items()))\n"
            "open('/etc/passwd-copy', 'w').write('x')",
            "build",
            "Read-only file system",
        ),
    ],
    ids=["reach-the-index", "sleep-forever", "read-env-write-outside"],
)
def test_hostile_build_fails_cleanly_and_the_next_release_works(
    prelude: str,
    reason_class: str,
    log_says: str,
    tmp_path: Path,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    with FixtureIndex() as index:
        _publish_hostile(index, tmp_path, "6.6.6", prelude.replace("INDEX_PORT", str(index.port)))
        code, hostile = _check("demo==6.6.6", index, tmp_path, monkeypatch, capsys)
        assert (code, hostile["verdict"], hostile["reason_class"]) == (2, "failed", reason_class)
        log = (Path(hostile["evidence"]) / "build.log").read_text()
        assert log_says in log
        assert SECRET not in log
        assert not index.paths_requested() or all(
            not p.startswith("/connect") for p in index.paths_requested()
        )

        # the next job runs normally: a genuine in-tree release built by its "maintainer"
        members = in_tree_backend_members(version="1.0")
        sdist = write_sdist(tmp_path / "demo-1.0.tar.gz", SdistSpec("demo", "1.0", members))
        source = tmp_path / "maintainer-src"
        with tarfile.open(sdist) as tf:
            tf.extractall(source, filter="data")
        out = tmp_path / "maintainer-out"
        out.mkdir()
        (tmp_path / "empty-wheelhouse").mkdir()
        built = sandbox.run(
            BuildRequest(
                image=sandbox_image.reference,
                source_dir=source / "demo-1.0",
                wheelhouse=tmp_path / "empty-wheelhouse",
                requirements=(),
                distribution="wheel",
                env={"TZ": "UTC"},
                output_dir=out,
            )
        )
        assert built.status is BuildStatus.OK, built.log
        assert built.artifact is not None
        now = datetime.now(UTC)
        index.add_file("demo", sdist.name, sdist.read_bytes(), now)
        index.add_file("demo", built.artifact.name, built.artifact.read_bytes(), now)
        code, genuine = _check("demo==1.0", index, tmp_path, monkeypatch, capsys)
        assert (code, genuine["verdict"]) == (0, "reproducible"), genuine


SPIN = """\
import signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    pass
"""


def _running(container: Any) -> bool:
    """True while the container runs; a container already removed (another process on
    this host swept it, as it should) is gone."""
    try:
        container.reload()
    except docker.errors.NotFound:
        return False
    return bool(container.attrs["State"]["Running"])


def _containers_of(docker_client: Any, pid: int) -> list[Any]:
    wanted = [f"{ROLE_LABEL}={ROLE_BUILD}", f"{OWNER_PID_LABEL}={pid}"]
    return list(docker_client.containers.list(all=True, filters={"label": wanted}))


def test_a_killed_check_leaves_no_running_build_and_the_next_check_sweeps(
    tmp_path: Path,
    sandbox_image: ImageRef,
    docker_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    # Issue 17: `check` killed with SIGKILL mid-build (an OOM kill, a cancelled CI job).
    # The build spins at 100% CPU and ignores SIGTERM; nothing outside the container is
    # left to stop it, so the container must end itself at its deadline.
    timeout = 10.0
    with FixtureIndex() as index:
        _publish_hostile(index, tmp_path, "6.6.6", SPIN)
        env = {
            **os.environ,
            "REBUILDER_CACHE_DIR": str(tmp_path / "cache"),
            "REBUILDER_BUILD_TIMEOUT": str(timeout),
        }
        check = subprocess.Popen(
            [sys.executable, "-m", "cli", "check", "demo==6.6.6", "--index-url", index.url,
             "--out", str(tmp_path / "out"), "--json"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            started = time.monotonic()
            while not any(
                c.attrs["State"]["Running"] for c in _containers_of(docker_client, check.pid)
            ):
                assert check.poll() is None, "check ended before its build started"
                assert time.monotonic() - started < 120, "no build container started"
                time.sleep(0.2)
            (container,) = _containers_of(docker_client, check.pid)
            print(f"build started {time.monotonic() - started:.1f}s after the check")
            time.sleep(1.0)  # well into the build
            check.send_signal(signal.SIGKILL)
            check.wait()
            killed = time.monotonic()
        finally:
            if check.poll() is None:
                check.kill()
                check.wait()

        work = tmp_path / "cache" / "work"
        assert [p.name for p in work.iterdir() if p.name.startswith("rebuild-")]  # left behind
        assert _running(container)  # the build still spins: nobody outside to stop it
        while _running(container):
            # within the deadline (counted from before the kill) and a little slack
            assert time.monotonic() - killed < timeout + 5.0, "the build outlived its deadline"
            time.sleep(0.2)
        print(f"stopped {time.monotonic() - killed:.1f}s after the kill")
        wheel_only = make_wheel(tmp_path, "other", "1.0")  # no sdist: nothing to build
        index.add_file("other", wheel_only.name, wheel_only.read_bytes(), datetime.now(UTC))
        monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp_path / "cache"))
        main(["check", "other==1.0", "--index-url", index.url, "--out", str(tmp_path / "out2"),
              "--json", "--no-attest"])  # fmt: skip
        capsys.readouterr()
        assert _containers_of(docker_client, check.pid) == []
        assert not [p for p in work.iterdir() if p.name.startswith("rebuild-")]
