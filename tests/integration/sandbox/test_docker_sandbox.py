"""The Docker sandbox against a real engine: builds that work, and builds that misbehave."""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rebuilder.errors import SandboxError
from rebuilder.sandbox.docker import (
    ROLE_BUILD,
    ROLE_LABEL,
    DockerSandbox,
    build_command,
    container_options,
    remove_orphans,
    stage_driver,
)
from rebuilder.sandbox.image import ImageRef
from rebuilder.sandbox.model import BuildRequest, BuildStatus
from tests.integration.sandbox.conftest import SMALL_LIMITS
from tests.support.dists import (
    DEFAULT_TIME,
    SdistMember,
    in_tree_backend_members,
    make_wheel,
    setuptools_sdist_members,
)
from tests.support.wheelhouse import require

pytestmark = pytest.mark.docker

MakeRequest = Callable[..., BuildRequest]
CLOCK = 1_600_000_000  # 2020-09-13 12:26:40 UTC
CLOCK_TIME = (2020, 9, 13, 12, 26, 40)


def entries(outcome: Any) -> dict[str, zipfile.ZipInfo]:
    assert outcome.artifact is not None, outcome.log
    with zipfile.ZipFile(outcome.artifact) as zf:
        return {info.filename: info for info in zf.infolist()}


def test_builds_a_wheel_with_an_in_tree_backend(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    outcome = sandbox.run(make_request())

    assert outcome.status is BuildStatus.OK, outcome.log
    assert outcome.exit_code == 0
    assert outcome.artifact is not None
    assert outcome.artifact.name == "demo-1.0-py3-none-any.whl"
    found = entries(outcome)
    assert found["demo/__init__.py"].date_time == DEFAULT_TIME  # the sdist's mtime, kept
    assert set(outcome.timings) >= {
        "create", "start", "run", "total", "copy", "venv", "install", "requires", "build",
    }  # fmt: skip
    assert "[rebuilder-driver] phase build" in outcome.log


def test_a_metadata_only_run_gives_the_wheels_metadata_alone(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    outcome = sandbox.run(make_request(distribution="metadata"))

    assert outcome.status is BuildStatus.OK, outcome.log
    assert outcome.artifact is not None
    assert outcome.artifact.name == "METADATA"
    text = outcome.artifact.read_text(encoding="utf-8")
    assert text.startswith("Metadata-Version: ")
    assert "\nName: demo\n" in text
    assert not list(outcome.artifact.parent.glob("*.whl"))


def test_clock_replay_stamps_generated_files_with_the_build_clock(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    outcome = sandbox.run(make_request(build_clock=CLOCK))

    assert outcome.status is BuildStatus.OK, outcome.log
    found = entries(outcome)
    assert found["demo-1.0.dist-info/METADATA"].date_time == CLOCK_TIME
    assert found["demo-1.0.dist-info/WHEEL"].date_time == CLOCK_TIME
    # RECORD is stamped with "now", which runs from the build clock.
    record = found["demo-1.0.dist-info/RECORD"].date_time
    assert CLOCK_TIME <= record <= (2020, 9, 13, 12, 26, 50)
    assert found["demo/__init__.py"].date_time == DEFAULT_TIME


def test_without_clock_replay_generated_files_carry_today(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    outcome = sandbox.run(make_request())

    assert entries(outcome)["demo-1.0.dist-info/METADATA"].date_time[0] >= 2025


def test_umask_and_source_mtime_are_applied(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    outcome = sandbox.run(make_request(umask=0o077, source_mtime=1_500_000_000))

    assert outcome.status is BuildStatus.OK, outcome.log
    found = entries(outcome)
    assert (found["demo-1.0.dist-info/METADATA"].external_attr >> 16) & 0o777 == 0o600
    assert found["demo/__init__.py"].date_time == (2017, 7, 14, 2, 40, 0)


def test_installs_requirements_from_the_wheelhouse_only(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    request = make_request(dynamic_requires=("demo-dep==2.0",), requirements=("demo-dep==2.0",))
    wheel = make_wheel(request.wheelhouse, "demo_dep", "2.0")
    wheel.chmod(0o644)

    outcome = sandbox.run(request)

    assert outcome.status is BuildStatus.OK, outcome.log
    assert outcome.timings["install"] > 0


def test_missing_dynamic_requirements_are_reported(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    outcome = sandbox.run(make_request(dynamic_requires=("wheel", "setuptools>=40")))

    assert outcome.status is BuildStatus.MISSING_REQUIREMENTS, outcome.log
    assert outcome.missing == ("setuptools>=40", "wheel")
    assert outcome.artifact is None


def test_a_failing_backend_fails_the_build(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    outcome = sandbox.run(make_request(build_prelude="raise RuntimeError('backend broke')"))

    assert outcome.status is BuildStatus.FAILED
    assert outcome.exit_code == 1
    assert "backend broke" in outcome.log


def test_the_network_is_unreachable(sandbox: DockerSandbox, make_request: MakeRequest) -> None:
    prelude = """\
import socket
for host, port in (("1.1.1.1", 53), ("127.0.0.1", 5432)):
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        print("no connection to", host, ":", exc, flush=True)
    else:
        print("CONNECTED to", host, flush=True)
raise SystemExit("network checked")
"""
    outcome = sandbox.run(make_request(build_prelude=prelude))

    assert outcome.status is BuildStatus.FAILED
    assert "no connection to 1.1.1.1 : [Errno 101] Network is unreachable" in outcome.log
    assert "no connection to 127.0.0.1" in outcome.log
    assert "CONNECTED" not in outcome.log


def test_writing_outside_scratch_fails(sandbox: DockerSandbox, make_request: MakeRequest) -> None:
    prelude = """\
for path in ("/var/tmp/escape", "/etc/escape", "/src/escape", "/wheelhouse/escape"):
    try:
        open(path, "w").close()
    except OSError as exc:
        print("blocked", path, exc.strerror, flush=True)
    else:
        print("WROTE", path, flush=True)
raise SystemExit("writes checked")
"""
    outcome = sandbox.run(make_request(build_prelude=prelude))

    assert "blocked /var/tmp/escape Read-only file system" in outcome.log
    assert "blocked /src/escape Read-only file system" in outcome.log
    assert "WROTE" not in outcome.log


def test_a_build_that_never_ends_times_out(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    limits = replace(SMALL_LIMITS, timeout_seconds=3.0)
    started = time.monotonic()

    outcome = sandbox.run(make_request(build_prelude="time.sleep(10**6)", limits=limits))

    assert outcome.status is BuildStatus.TIMEOUT
    assert "wall-clock limit of 3s" in outcome.detail
    assert time.monotonic() - started < 3.0 + 10.0


def test_a_fork_bomb_hits_the_pids_limit(sandbox: DockerSandbox, make_request: MakeRequest) -> None:
    prelude = """\
refused = False
while True:
    try:
        os.fork()
    except OSError as exc:
        if not refused:
            print("fork refused:", exc, flush=True)
            refused = True
"""
    limits = replace(SMALL_LIMITS, timeout_seconds=5.0, pids=32)
    started = time.monotonic()

    outcome = sandbox.run(make_request(build_prelude=prelude, limits=limits))

    assert outcome.status is BuildStatus.TIMEOUT
    assert "fork refused: [Errno 11] Resource temporarily unavailable" in outcome.log
    assert time.monotonic() - started < 5.0 + 15.0


def test_a_memory_hog_hits_the_memory_limit(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    outcome = sandbox.run(make_request(build_prelude="hog = b'x' * (1024**3)"))

    assert outcome.status is BuildStatus.SANDBOX, outcome.log
    assert "memory limit" in outcome.detail


def test_a_log_flood_is_capped(sandbox: DockerSandbox, make_request: MakeRequest) -> None:
    prelude = """\
import sys
line = b"y" * 1023 + b"\\n"
block = line * 1024
for _ in range(1024):  # 1 GiB
    sys.stdout.buffer.write(block)
sys.stdout.flush()
print("flood over", flush=True)
"""
    limits = replace(SMALL_LIMITS, timeout_seconds=120.0)
    outcome = sandbox.run(make_request(build_prelude=prelude, limits=limits))

    assert outcome.status is BuildStatus.OK, outcome.detail
    assert len(outcome.log.encode()) < limits.log_bytes + 200
    assert "log cut by the rebuilder" in outcome.log
    assert outcome.log.startswith("[rebuilder-driver] phase copy")  # the head is kept
    assert "result: ok" in outcome.log[-200:]  # and so is the tail


def test_an_oversized_artifact_is_refused(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    prelude = """\
name = "demo-1.0-py3-none-any.whl"
with open(os.path.join(wheel_directory, name), "wb") as f:
    f.write(os.urandom(8 * 1024 * 1024))
return name
"""
    request = make_request(build_prelude=prelude)

    outcome = sandbox.run(request)

    assert outcome.status is BuildStatus.SANDBOX
    assert "over" in outcome.detail
    assert not (request.output_dir / "demo-1.0-py3-none-any.whl").exists()


def test_filling_the_output_folder_is_stopped(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    prelude = """\
try:
    with open("/out/junk", "wb") as f:
        for _ in range(400):
            f.write(bytes(1024 * 1024))
            f.flush()
except OSError as exc:
    print("junk refused:", exc, flush=True)
"""
    request = make_request(build_prelude=prelude)

    outcome = sandbox.run(request)

    assert outcome.status is BuildStatus.SANDBOX, outcome.log
    assert "output over the limit" in outcome.detail
    assert not (request.output_dir / "junk").exists()  # /out is the container's own


def _free(path: Path) -> tuple[int, int]:
    """(bytes, inodes) free on the filesystem holding ``path``."""
    fs = os.statvfs(path)
    return fs.f_bavail * fs.f_frsize, fs.f_favail


def test_an_unlinked_file_cannot_write_past_the_output_limit(
    sandbox: DockerSandbox, make_request: MakeRequest, tmp_path: Path
) -> None:
    # The escape of issue 17: a file opened in /out, unlinked, then written to. No
    # folder walk sees it; the tmpfs counts its blocks all the same.
    prelude = """\
hidden = open("/out/hidden", "wb")
os.unlink("/out/hidden")
written = 0
try:
    for _ in range(2048):  # 2 GiB
        hidden.write(bytes(1024 * 1024))
        hidden.flush()
        written += 1
except OSError as exc:
    print("write refused after", written, "MiB:", exc.strerror, flush=True)
time.sleep(5)
"""
    before = _free(tmp_path)[0]
    request = make_request(build_prelude=prelude)

    outcome = sandbox.run(request)

    assert outcome.status is BuildStatus.SANDBOX, outcome.log
    assert f"output over the limit of {SMALL_LIMITS.output_bytes} bytes" in outcome.detail
    assert "MiB: No space left on device" in outcome.log  # refused by the kernel
    assert before - _free(tmp_path)[0] < 512 * 1024**2  # the host's disk: untouched


def test_many_empty_files_hit_the_output_inode_limit(
    sandbox: DockerSandbox, make_request: MakeRequest, tmp_path: Path
) -> None:
    prelude = """\
made = 0
try:
    for i in range(200_000):
        open(f"/out/empty-{i}", "w").close()
        made += 1
except OSError as exc:
    print("file refused after", made, "files:", exc.strerror, flush=True)
time.sleep(5)
"""
    before = _free(tmp_path)[1]
    request = make_request(build_prelude=prelude)

    outcome = sandbox.run(request)

    assert outcome.status is BuildStatus.SANDBOX, outcome.log
    assert f"output over the limit of {SMALL_LIMITS.output_files} files" in outcome.detail
    assert "No space left on device" in outcome.log
    assert before - _free(tmp_path)[1] < 100_000  # the host's inodes: untouched
    assert list(request.output_dir.iterdir()) == []


def test_a_missing_image_is_a_sandbox_error(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    with pytest.raises(SandboxError, match="not present"):
        sandbox.run(make_request(image="pypi-rebuilder-sandbox:does-not-exist"))


def test_remove_orphans_sweeps_labelled_containers(
    docker_client: Any, sandbox_image: ImageRef, test_label: dict[str, str]
) -> None:
    orphan = docker_client.containers.create(
        sandbox_image.image_id, ["true"], labels={ROLE_LABEL: ROLE_BUILD, **test_label}
    )
    bystander = docker_client.containers.create(sandbox_image.image_id, ["true"], labels=test_label)
    try:
        assert remove_orphans(docker_client, timedelta(hours=1), labels=test_label) == []
        removed = remove_orphans(docker_client, timedelta(0), labels=test_label)
        assert removed == [orphan.id]
    finally:
        bystander.remove(force=True)


def test_a_real_setuptools_build_replays_the_build_clock(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    wheels = require()
    request = make_request(
        members=setuptools_sdist_members(),
        requirements=("setuptools==69.0.3", "wheel==0.42.0"),
        build_clock=CLOCK,
        limits=replace(SMALL_LIMITS, memory_bytes=1024**3, pids=256, output_bytes=64 * 1024**2),
    )
    for name in ("setuptools-69.0.3-py3-none-any.whl", "wheel-0.42.0-py3-none-any.whl"):
        shutil.copy(wheels[name], request.wheelhouse / name)
        (request.wheelhouse / name).chmod(0o644)

    outcome = sandbox.run(request)

    assert outcome.status is BuildStatus.OK, outcome.log
    found = entries(outcome)
    generated = [n for n in found if ".dist-info/" in n and not n.endswith("/RECORD")]
    assert generated
    assert {found[n].date_time for n in generated} == {CLOCK_TIME}, outcome.log
    assert found["demo/__init__.py"].date_time == DEFAULT_TIME
    assert (
        "Generator: bdist_wheel (0.42.0)"
        in zipfile.ZipFile(outcome.artifact).read("demo-1.0.dist-info/WHEEL").decode()
    )


def _with_module_mode(mode: int) -> list[SdistMember]:
    members = in_tree_backend_members()
    return [replace(m, mode=mode) if m.name == "src/demo/__init__.py" else m for m in members]


def test_the_source_mode_mask_clears_bits_on_the_copy_only(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    masked = make_request(members=_with_module_mode(0o664), umask=0o002, source_mode_mask=0o022)
    outcome = sandbox.run(masked)

    assert outcome.status is BuildStatus.OK, outcome.log
    assert (entries(outcome)["demo/__init__.py"].external_attr >> 16) & 0o777 == 0o644
    assert (masked.source_dir / "src" / "demo" / "__init__.py").stat().st_mode & 0o777 == 0o664

    plain = sandbox.run(replace(masked, source_mode_mask=0))
    assert (entries(plain)["demo/__init__.py"].external_attr >> 16) & 0o777 == 0o664


FSTAT_PRELUDE = """\
def add_by_descriptor(zf, path, arcname):
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        zf.writestr(zipfile.ZipInfo(arcname, time.gmtime(st.st_mtime)[:6]), f.read())
"""


def test_the_clock_map_reaches_a_backend_that_stamps_from_fstat(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    members = []
    for member in in_tree_backend_members(build_prelude=FSTAT_PRELUDE):
        if member.name != "backend.py":
            members.append(member)
            continue
        data = member.data.replace(
            b"zf.write(os.path.join(generated", b"add_by_descriptor(zf, os.path.join(generated"
        )
        assert data != member.data
        members.append(replace(member, data=data))
    earlier = CLOCK - 2
    request = make_request(
        members=members,
        build_clock=CLOCK,
        clock_map={"demo-1.0.dist-info/METADATA": earlier, "demo-1.0.dist-info/WHEEL": CLOCK},
    )

    outcome = sandbox.run(request)

    assert outcome.status is BuildStatus.OK, outcome.log
    found = entries(outcome)
    assert found["demo-1.0.dist-info/METADATA"].date_time == (2020, 9, 13, 12, 26, 38)
    assert found["demo-1.0.dist-info/WHEEL"].date_time == CLOCK_TIME


def test_the_container_ends_itself_at_its_deadline_with_nobody_watching(
    docker_client: Any, make_request: MakeRequest
) -> None:
    # What `check` killed with SIGKILL leaves: a started build and no one to stop it.
    # The warden (PID 1) kills every process at the deadline, SIGTERM-proof spinners
    # included, and the container stops.
    spin = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass"
    limits = replace(SMALL_LIMITS, timeout_seconds=4.0)
    request = make_request(build_prelude=f"import signal\n{spin}", limits=limits)
    request.output_dir.mkdir()
    staged = stage_driver(request)
    container = docker_client.containers.create(
        request.image, build_command(request), **container_options(request, staged)
    )
    try:
        container.start()
        started = time.monotonic()
        time.sleep(2.0)
        container.reload()
        assert container.attrs["State"]["Running"]
        while container.attrs["State"]["Running"]:
            assert time.monotonic() - started < limits.timeout_seconds + 5.0
            time.sleep(0.2)
            container.reload()
        assert container.attrs["State"]["ExitCode"] == 124
        assert b"[rebuilder-warden] timeout: wall-clock limit of 4s hit" in container.logs()
    finally:
        container.remove(force=True)
        shutil.rmtree(staged, ignore_errors=True)


def test_scratch_space_counts_against_the_memory_budget(
    sandbox: DockerSandbox, make_request: MakeRequest
) -> None:
    # /scratch (1 GiB here) is a tmpfs: its pages are charged to the container's memory
    # cgroup, so scratch and memory together stay within the memory limit (256 MiB).
    prelude = """\
with open("/scratch/fill", "wb") as f:
    for _ in range(600):
        f.write(bytes(1024 * 1024))
        f.flush()
print("WROTE 600 MiB of scratch", flush=True)
"""
    limits = replace(SMALL_LIMITS, scratch_bytes=1024**3, timeout_seconds=60.0)

    outcome = sandbox.run(make_request(build_prelude=prelude, limits=limits))

    assert outcome.status is BuildStatus.SANDBOX, outcome.log
    assert "memory limit" in outcome.detail
    assert "WROTE" not in outcome.log
