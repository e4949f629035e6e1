"""The Docker runner's decisions, against a fake engine."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from rebuilder.errors import SandboxError
from rebuilder.sandbox.docker import (
    ROLE_BUILD,
    ROLE_LABEL,
    DockerSandbox,
    EngineProtections,
    LogCap,
    container_options,
    read_result,
    remove_orphans,
    unpack_channel,
)
from rebuilder.sandbox.model import BuildRequest, BuildStatus, SandboxLimits
from tests.unit.sandbox.fakes import FakeContainer, FakeContainers, FakeDocker

OK_RESULT = {
    "status": "ok",
    "artifact": "demo-1.0-py3-none-any.whl",
    "detail": "",
    "missing": [],
    "timings": {"copy": 0.1, "build": 0.5},
}


@pytest.fixture
def request_(tmp_path: Path) -> BuildRequest:
    for name in ("src", "wheelhouse"):
        (tmp_path / name).mkdir()
    return BuildRequest(
        image="sandbox:test",
        source_dir=tmp_path / "src",
        wheelhouse=tmp_path / "wheelhouse",
        requirements=("setuptools==75.0.0",),
        distribution="wheel",
        env={"SOURCE_DATE_EPOCH": "1"},
        output_dir=tmp_path / "out",
        limits=SandboxLimits(timeout_seconds=5, log_bytes=1000, output_bytes=1000),
        labels={"org.pypi-rebuilder.file": "demo-1.0-py3-none-any.whl"},
    )


def run(request: BuildRequest, behaviour: Any) -> tuple[Any, FakeContainer]:
    client, containers = FakeDocker.running(behaviour)
    outcome = DockerSandbox(client=client, poll_seconds=0.01, grace_seconds=0.2).run(request)
    return outcome, containers.created[0]


def write_wheel_and_finish(container: FakeContainer, size: int = 10) -> None:
    (container.output_dir / "demo-1.0-py3-none-any.whl").write_bytes(b"w" * size)
    container.log = b"building\n"
    container.finish(0, OK_RESULT)


def test_a_successful_build_returns_the_artifact_and_timings(request_: BuildRequest) -> None:
    outcome, container = run(request_, write_wheel_and_finish)

    assert outcome.status is BuildStatus.OK
    assert outcome.artifact == request_.output_dir / "demo-1.0-py3-none-any.whl"
    assert outcome.log == "building\n"
    assert outcome.timings["copy"] == 0.1
    assert {"create", "start", "run", "remove", "total"} <= set(outcome.timings)
    assert container.events[-1] == "remove(force=True)"


def test_missing_requirements_are_passed_on(request_: BuildRequest) -> None:
    result = {"status": "missing-requirements", "missing": ["wheel"], "detail": "not installed"}

    outcome, _ = run(request_, lambda c: c.finish(3, result))

    assert outcome.status is BuildStatus.MISSING_REQUIREMENTS
    assert outcome.missing == ("wheel",)


def test_a_driver_that_leaves_no_result_is_a_failed_build(request_: BuildRequest) -> None:
    outcome, _ = run(request_, lambda c: c.finish(1, None))

    assert outcome.status is BuildStatus.FAILED
    assert outcome.exit_code == 1
    assert "without a result" in outcome.detail


def test_ok_with_a_nonzero_exit_is_not_trusted(request_: BuildRequest) -> None:
    def behaviour(c: FakeContainer) -> None:
        write_wheel_and_finish(c)
        c.state["ExitCode"] = 2

    outcome, _ = run(request_, behaviour)

    assert outcome.status is BuildStatus.FAILED
    assert outcome.artifact is None


def test_an_oom_kill_is_a_sandbox_outcome(request_: BuildRequest) -> None:
    outcome, _ = run(request_, lambda c: c.finish(137, None, oom=True))

    assert outcome.status is BuildStatus.SANDBOX
    assert "memory limit" in outcome.detail


@pytest.mark.parametrize("code", [137, 143])
def test_a_container_stopped_from_outside_is_interrupted_not_failed(
    request_: BuildRequest, code: int
) -> None:
    # The engine restarting stops every container: the build never got to finish, and
    # the attempt must be retried rather than recorded as the backend's failure.
    outcome, _ = run(request_, lambda c: c.finish(code, None))

    assert outcome.status is BuildStatus.INTERRUPTED
    assert "stopped from outside" in outcome.detail


def test_a_build_past_its_time_is_killed(request_: BuildRequest) -> None:
    limits = SandboxLimits(timeout_seconds=0.2)
    request = BuildRequest(**{**request_.__dict__, "limits": limits})

    outcome, container = run(request, lambda c: None)  # never ends by itself

    assert outcome.status is BuildStatus.TIMEOUT
    assert "kill" in container.events
    assert container.events[-1] == "remove(force=True)"


def test_an_artifact_over_the_limit_is_refused(request_: BuildRequest) -> None:
    outcome, _ = run(request_, lambda c: write_wheel_and_finish(c, size=5000))

    assert outcome.status is BuildStatus.SANDBOX
    assert outcome.artifact is None


def test_the_container_is_removed_when_waiting_is_interrupted(request_: BuildRequest) -> None:
    client, containers = FakeDocker.running(lambda c: None)

    def interrupted() -> None:
        raise KeyboardInterrupt

    sandbox = DockerSandbox(client=client)
    original_create = containers.create

    def create(image: str, command: list[str], **kwargs: object) -> Any:
        container = original_create(image, command, **kwargs)
        container.reload = interrupted  # type: ignore[method-assign]
        return container

    containers.create = create  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        sandbox.run(request_)
    assert containers.created[0].events[-1] == "remove(force=True)"


def test_a_missing_image_is_a_sandbox_error(request_: BuildRequest) -> None:
    containers = FakeContainers(error=docker.errors.ImageNotFound("no such image"))

    with pytest.raises(SandboxError, match="rebuilder image build"):
        DockerSandbox(client=FakeDocker(containers)).run(request_)


def test_the_container_walls(request_: BuildRequest, tmp_path: Path) -> None:
    options = container_options(request_, tmp_path / "staged")

    assert options["network_mode"] == "none"
    assert options["read_only"] is True
    assert options["user"] == "10001:10001"
    assert options["cap_drop"] == ["ALL"]
    assert options["security_opt"] == ["no-new-privileges"]
    assert options["memswap_limit"] == options["mem_limit"] == request_.limits.memory_bytes
    assert options["pids_limit"] == request_.limits.pids
    assert options["labels"][ROLE_LABEL] == ROLE_BUILD
    assert options["labels"]["org.pypi-rebuilder.file"] == "demo-1.0-py3-none-any.whl"
    assert [m["Target"] for m in options["mounts"] if not m["ReadOnly"]] == []
    out = options["tmpfs"]["/out"]  # the output: the kernel counts bytes and inodes
    assert "size=1049576," in out  # 1000 bytes and a MiB for result.json
    assert f"nr_inodes={request_.limits.output_files + 16}," in out
    assert options["init"] is False  # the warden is PID 1
    assert options["log_config"]["Type"] == "json-file"


def test_log_cap_keeps_head_and_tail() -> None:
    cap = LogCap(100)
    for i in range(1000):
        cap.feed(f"{i:05d}\n".encode())

    text = cap.text()

    assert text.startswith("00000\n00001\n")
    assert text.endswith("00998\n00999\n")
    assert "log cut by the rebuilder: 5900 of 6000 bytes left out" in text


def test_log_cap_leaves_a_short_log_alone() -> None:
    cap = LogCap(100)
    cap.feed(b"short\n")

    assert cap.text() == "short\n"


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"status": "bogus"}',
        '{"status": "ok", "artifact": "../escape.whl"}',
        '{"status": "ok", "artifact": ".hidden"}',
        '["ok"]',
    ],
)
def test_a_malformed_result_is_ignored(tmp_path: Path, content: str) -> None:
    (tmp_path / "result.json").write_text(content)

    assert read_result(tmp_path) is None


def test_a_symlinked_result_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text('{"status": "ok"}')
    (tmp_path / "result.json").symlink_to(tmp_path / "elsewhere.json")

    assert read_result(tmp_path) is None


def test_remove_orphans_removes_only_old_build_containers() -> None:
    containers = FakeContainers()
    build = containers.create("img", [], labels={ROLE_LABEL: ROLE_BUILD})
    other = containers.create("img", [], labels={"something": "else"})

    removed = remove_orphans(FakeDocker(containers), timedelta(0))

    assert removed == [build.id]
    assert other.id not in removed
    assert remove_orphans(FakeDocker(containers), timedelta(days=36500)) == []


def test_the_driver_is_mounted_from_a_staged_copy_beside_the_output(
    request_: BuildRequest,
) -> None:
    from rebuilder.sandbox.docker import stage_driver  # noqa: PLC0415

    staged = stage_driver(request_)
    assert staged.parent == request_.output_dir.parent  # in the worker's shared work tree
    assert (staged / "driver.py").read_bytes().startswith(b'"""')
    assert (staged / "clockreplay" / "sitecustomize.py").is_file()
    readable = [p for p in staged.rglob("*") if p.name != "channel"]
    assert all(p.stat().st_mode & 0o004 for p in readable)  # the build user reads
    assert (staged / "warden.py").is_file()
    assert stat.S_ISFIFO((staged / "channel").stat().st_mode)
    mounts = {m["Target"]: m["Source"] for m in container_options(request_, staged)["mounts"]}
    assert mounts["/driver"] == str(staged)


def test_the_staged_driver_is_removed_after_the_build(request_: BuildRequest) -> None:
    run(request_, write_wheel_and_finish)
    assert not list(request_.output_dir.parent.glob(".driver-*"))


def test_a_timeout_reported_by_the_warden_is_a_timeout(request_: BuildRequest) -> None:
    outcome, _ = run(request_, lambda c: c.finish(124, None, ending="timeout"))

    assert outcome.status is BuildStatus.TIMEOUT
    assert "wall-clock limit of 5s hit" in outcome.detail


def test_an_output_limit_reported_by_the_warden_is_a_sandbox_outcome(
    request_: BuildRequest,
) -> None:
    detail = "output over the limit of 1000 files (at least 1001 made)"
    outcome, _ = run(request_, lambda c: c.finish(125, None, ending="output-limit", detail=detail))

    assert outcome.status is BuildStatus.SANDBOX
    assert outcome.detail == detail


@pytest.mark.parametrize(
    "stream",
    [
        b"",
        b"not json\n",
        b'{"ending": "exited", "result": null, "artifact": "../x.whl", "size": 1}\nx',
        b'{"ending": "exited", "result": null, "artifact": "a.whl", "size": 9}\nshort',
        b'{"ending": "exited", "result": null, "artifact": "a.whl", "size": 1}\nxEXTRA',
        b'{"ending": "whatever", "result": null, "artifact": null, "size": 0}\n',
    ],
    ids=["empty", "junk", "traversal", "short", "extra", "unknown-ending"],
)
def test_a_tampered_channel_delivers_nothing(tmp_path: Path, stream: bytes) -> None:
    (tmp_path / "received").write_bytes(stream)
    (tmp_path / "out").mkdir()

    assert unpack_channel(tmp_path / "received", tmp_path / "out") is None
    assert list((tmp_path / "out").iterdir()) == []


def test_a_build_that_floods_the_channel_is_not_believed(request_: BuildRequest) -> None:
    def flood(c: FakeContainer) -> None:
        fd = os.open(c.driver_dir / "channel", os.O_WRONLY)
        for _ in range(600):  # 600 * 64 KiB, past the reader's cap of 2 MiB + 1000 bytes
            os.write(fd, b"z" * 65536)
        os.close(fd)
        write_wheel_and_finish(c)

    outcome, _ = run(request_, flood)

    assert outcome.status is BuildStatus.FAILED
    assert outcome.artifact is None
    assert sum(f.stat().st_size for f in request_.output_dir.iterdir()) == 0


def test_the_engine_protections_are_read_from_docker_info() -> None:
    info = {
        "SecurityOptions": ["name=seccomp,profile=default", "name=cgroupns"],
        "CgroupVersion": "2",
    }
    found = EngineProtections.from_info(info)

    assert (found.seccomp, found.apparmor, found.selinux) == ("default", False, False)
    assert found.summary() == (
        "the engine enforces seccomp (default) (cgroup v2); not offered: AppArmor, SELinux"
    )
    both = EngineProtections.from_info(
        {"SecurityOptions": ["name=apparmor", "name=seccomp,profile=builtin"]}
    )
    assert both.apparmor and both.seccomp == "builtin"


@pytest.mark.parametrize(
    "options", [[], ["name=apparmor"], ["name=seccomp,profile=unconfined"]], ids=str
)
def test_an_engine_without_seccomp_runs_no_build(
    request_: BuildRequest, options: list[str]
) -> None:
    client, containers = FakeDocker.running(write_wheel_and_finish)
    client.engine_info = {"SecurityOptions": options}

    with pytest.raises(SandboxError, match="no seccomp profile"):
        DockerSandbox(client=client).run(request_)
    assert containers.created == []
