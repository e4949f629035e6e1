"""Run one build in a hermetic Docker container (the production :class:`Sandbox`).

The container has no network, a read-only root, read-only inputs, a non-root user, no
capabilities and limits on memory, processes, CPU, scratch space, time, log and output.
Its PID 1 is :mod:`rebuilder.sandbox.warden`, which runs :mod:`rebuilder.sandbox.driver`
(both bind-mounted read-only), holds the wall-clock and output limits inside the
container (so they hold when this process dies) and sends the result and the built file
back through a named pipe: the build's output is a tmpfs of the container, never a host
folder. The container is always removed; containers left by a crashed worker carry a
label so :func:`remove_orphans` finds them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import requests

from rebuilder.errors import SandboxError
from rebuilder.sandbox.model import BuildOutcome, BuildRequest, BuildStatus
from rebuilder.sandbox.warden import EXIT_OUTPUT_LIMIT, EXIT_TIMEOUT

logger = logging.getLogger(__name__)

ROLE_LABEL = "org.pypi-rebuilder.role"
ROLE_BUILD = "build"
BUILD_UID = 10001
TOOLS_PYTHON = "/opt/rebuilder-tools/bin/python"
RESULT_NAME = "result.json"
_DRIVER_SOURCE = Path(__file__).resolve().parent / "driver.py"
_WARDEN_SOURCE = Path(__file__).resolve().parent / "warden.py"
_CLOCK_REPLAY_SOURCE = Path(__file__).resolve().parent / "clockreplay"
_TMP_BYTES = 64 * 1024**2
CHANNEL_NAME = "channel"  # the named pipe the warden sends the result through
MODES_NAME = "source-modes.json"
_OUT_HEADROOM = 1024**2  # room in /out for result.json beside a wheel of the largest size
_OUT_INODES_HEADROOM = 16
_HOST_GRACE_SECONDS = 30.0  # the host's own deadline, behind the warden's
_HEADER_LIMIT = 1024**2
_HEAD_SECONDS = 5.0  # how long the head of a finished container's log may still take


class Container(Protocol):
    """The part of ``docker.models.containers.Container`` the sandbox uses."""

    @property
    def id(self) -> str: ...
    @property
    def attrs(self) -> Mapping[str, Any]: ...
    def start(self) -> None: ...
    def reload(self) -> None: ...
    def kill(self) -> None: ...
    def remove(self, *, force: bool) -> None: ...
    def logs(self, *, stream: bool, follow: bool) -> Iterator[bytes]: ...


class Containers(Protocol):
    """The part of ``docker.models.containers.ContainerCollection`` the sandbox uses."""

    def create(self, image: str, command: list[str], **kwargs: object) -> Container: ...
    def list(self, *, all: bool, filters: Mapping[str, Any]) -> list[Container]: ...


class DockerClient(Protocol):
    """The part of ``docker.DockerClient`` the sandbox uses."""

    @property
    def containers(self) -> Containers: ...
    def info(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class EngineProtections:
    """What the engine itself enforces on every build container, as ``docker info`` says."""

    seccomp: str | None  # the default profile's name ("default", "builtin"), None if absent
    apparmor: bool
    selinux: bool
    userns: bool
    rootless: bool
    cgroup_version: str

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> EngineProtections:
        options: dict[str, dict[str, str]] = {}
        for entry in info.get("SecurityOptions") or []:
            fields = dict(part.partition("=")[::2] for part in str(entry).split(","))
            options[fields.get("name", "")] = fields
        seccomp = options.get("seccomp")
        return cls(
            seccomp=None if seccomp is None else seccomp.get("profile", "default"),
            apparmor="apparmor" in options,
            selinux="selinux" in options,
            userns="userns" in options,
            rootless="rootless" in options,
            cgroup_version=str(info.get("CgroupVersion") or "1"),
        )

    def summary(self) -> str:
        """One line for the log: what holds, and what this engine does not offer."""
        have = [f"seccomp ({self.seccomp})"] if self.seccomp else []
        have += [name for name, on in (
            ("AppArmor", self.apparmor), ("SELinux", self.selinux),
            ("user namespaces", self.userns), ("rootless engine", self.rootless),
        ) if on]  # fmt: skip
        lacking = [name for name, on in (("AppArmor", self.apparmor), ("SELinux", self.selinux))
                   if not on]  # fmt: skip
        text = f"the engine enforces {', '.join(have) or 'no kernel security profile'}"
        text += f" (cgroup v{self.cgroup_version})"
        return text + (f"; not offered: {', '.join(lacking)}" if lacking else "")


def check_engine(client: DockerClient) -> EngineProtections:
    """Read and log the engine's protections; refuse an engine without seccomp.

    The walls of :func:`container_options` (no capabilities, no new privileges, no
    network, read-only root, limits) hold on any engine; seccomp is what keeps the
    kernel's rarer system calls out of a build's reach, and builds do not run without it.
    """
    protections = EngineProtections.from_info(client.info())
    if protections.seccomp is None or protections.seccomp == "unconfined":
        raise SandboxError(
            "the Docker engine applies no seccomp profile to containers "
            f"({protections.summary()}); builds are not run without one"
        )
    logger.info("sandbox: %s", protections.summary())
    return protections


def connect() -> DockerClient:
    """A client for the local engine (``DOCKER_HOST`` and friends are honoured)."""
    import docker  # noqa: PLC0415 - keep importing this module cheap for fakes

    try:
        client: DockerClient = docker.from_env()
        client.ping()  # type: ignore[attr-defined]
    except docker.errors.DockerException as exc:
        raise SandboxError(f"Docker is not reachable: {exc}") from None
    return client


class LogCap:
    """Keeps the head and the tail of a log stream within ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._head_limit = limit // 2
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the stream."""
        self.total += len(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            if len(self._tail) > 2 * self._tail_limit:  # trim in batches, not per chunk
                del self._tail[: len(self._tail) - self._tail_limit]

    @property
    def head(self) -> bytes:
        """The first bytes kept."""
        return bytes(self._head)

    @property
    def head_full(self) -> bool:
        """True once the head holds all it will ever hold."""
        return len(self._head) >= self._head_limit

    @property
    def tail(self) -> bytes:
        """The last bytes kept (after the head)."""
        return bytes(self._tail[-self._tail_limit :]) if self._tail_limit else b""

    def text(self, *, head: bytes | None = None, at_least: bool = False) -> str:
        """The kept log with a note where bytes were cut.

        ``head`` replaces the kept head (taken from another view of the same log);
        ``at_least`` says the total is a lower bound (the engine dropped some).
        """
        head = self.head if head is None else head
        tail = self.tail
        cut = self.total - len(self.head) - len(tail)
        if cut <= 0 and not at_least:
            return (head + tail).decode("utf-8", "replace")
        amount = f"at least {max(cut, 0)}" if at_least else f"{cut} of {self.total}"
        note = f"\n[... log cut by the rebuilder: {amount} bytes left out ...]\n"
        return head.decode("utf-8", "replace") + note + tail.decode("utf-8", "replace")


def _close(stream: object) -> None:
    """Close an SDK log stream and the HTTP response under it."""
    # CancellableStream.close() shuts the socket but leaves the response (and with it a
    # reference to the socket) open, which leaks the file descriptor until collected.
    for target in (stream, getattr(stream, "_response", None)):
        close = getattr(target, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


def read_log(container: Container, limit: int, live_head: bytes) -> str:
    """The container's log within ``limit`` bytes, keeping its head and its tail.

    The engine's log file is rotated (its size is capped), so once the build is over
    it may no longer hold the start of a long log; ``live_head`` is that start, as
    read while the build ran. The tail always comes from the file after the end,
    because a following reader can stop before the last lines.
    """
    final = LogCap(limit)
    with contextlib.suppress(Exception):
        stream = container.logs(stream=True, follow=False)
        try:
            for chunk in stream:
                final.feed(chunk)
        finally:
            _close(stream)
    n = min(len(live_head), len(final.head))
    if live_head[:n] == final.head[:n] and len(final.head) >= len(live_head):
        return final.text()
    return final.text(head=live_head, at_least=True)


@dataclass(frozen=True)
class DriverResult:
    """What the driver reported in result.json (untrusted: the build could rewrite it)."""

    status: str
    artifact: str | None = None
    detail: str = ""
    missing: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)


_DRIVER_STATUSES = {"ok", "failed", "missing-requirements", "output-too-large"}


def read_result(output_dir: Path) -> DriverResult | None:
    """Parse result.json defensively; ``None`` when absent or malformed."""
    path = output_dir / RESULT_NAME
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1024**2:
            return None
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("status") not in _DRIVER_STATUSES:
        return None
    artifact = raw.get("artifact")
    if artifact is not None and (
        not isinstance(artifact, str) or Path(artifact).name != artifact or artifact[:1] == "."
    ):
        return None
    missing = raw.get("missing") or []
    timings = raw.get("timings") or {}
    if not isinstance(missing, list) or not isinstance(timings, dict):
        return None
    return DriverResult(
        status=str(raw["status"]),
        artifact=artifact,
        detail=str(raw.get("detail", ""))[:1000],
        missing=tuple(str(m) for m in missing),
        timings={str(k): float(v) for k, v in timings.items() if isinstance(v, int | float)},
    )


def driver_spec(request: BuildRequest) -> str:
    """The JSON document handed to the driver."""
    return json.dumps(
        {
            "distribution": request.distribution,
            "requirements": list(request.requirements),
            "env": dict(request.env),
            "umask": request.umask,
            "build_clock": request.build_clock,
            "source_mtime": request.source_mtime,
            "source_mode_mask": request.source_mode_mask,
            "output_bytes": request.limits.output_bytes,
            "config_settings": {k: list(v) for k, v in request.config_settings.items()},
            "clock_map": dict(request.clock_map),
        },
        sort_keys=True,
    )


def stage_driver(request: BuildRequest, modes: Mapping[str, int] | None = None) -> Path:
    """Stage the warden, the driver and the build's inputs; the folder to mount at /driver.

    The engine resolves bind mounts on its own host. A worker running in a container
    (compose) has the package inside its image, where the engine cannot see it, but
    its work folders are shared with the host at the same path: so the driver is
    mounted from there. Readable by the build user, writable by nobody in the sandbox,
    except the channel: a named pipe the build user may only write to.
    """
    staged = request.output_dir.parent / f".driver-{uuid.uuid4().hex[:12]}"
    staged.mkdir(mode=0o755)
    shutil.copyfile(_DRIVER_SOURCE, staged / "driver.py")
    shutil.copyfile(_WARDEN_SOURCE, staged / "warden.py")
    shutil.copytree(
        _CLOCK_REPLAY_SOURCE, staged / "clockreplay", ignore=shutil.ignore_patterns("__pycache__")
    )
    if modes:
        (staged / MODES_NAME).write_text(json.dumps(dict(modes)), encoding="utf-8")
    for path in [staged, *staged.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    os.mkfifo(staged / CHANNEL_NAME)
    (staged / CHANNEL_NAME).chmod(0o622)
    return staged


def warden_conf(request: BuildRequest) -> str:
    """The JSON document handed to the warden (PID 1)."""
    return json.dumps(
        {
            "timeout_seconds": request.limits.timeout_seconds,
            "out": "/out",
            "output_bytes": request.limits.output_bytes,
            "output_files": request.limits.output_files,
            "channel": f"/driver/{CHANNEL_NAME}",
        },
        sort_keys=True,
    )


def build_command(request: BuildRequest) -> list[str]:
    """The container's command: the warden as PID 1, running the driver."""
    return [
        TOOLS_PYTHON, "-I", "/driver/warden.py", warden_conf(request),
        TOOLS_PYTHON, "-I", "/driver/driver.py", driver_spec(request),
    ]  # fmt: skip


def container_options(request: BuildRequest, driver_dir: Path) -> dict[str, Any]:
    """Keyword arguments of ``containers.create`` for ``request``: the sandbox's walls.

    ``driver_dir`` holds the warden, the driver and the channel (see :func:`stage_driver`).
    Every writable place is a tmpfs with a size (and, for ``/out``, an inode) limit the
    kernel enforces; tmpfs pages are charged to the container's memory limit as well.
    """
    from docker.types import LogConfig, Mount, Ulimit  # noqa: PLC0415

    limits = request.limits
    log_file_bytes = max(4 * limits.log_bytes, 8 * 1024**2)
    out_bytes = limits.output_bytes + _OUT_HEADROOM
    out_inodes = limits.output_files + _OUT_INODES_HEADROOM
    owner = f"uid={BUILD_UID},gid={BUILD_UID}"
    return {
        "user": f"{BUILD_UID}:{BUILD_UID}",
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {
            "/scratch": f"rw,exec,nosuid,nodev,size={limits.scratch_bytes},mode=1777",
            # The container's own /tmp: a private tmpfs, not the host's.
            "/tmp": f"rw,noexec,nosuid,nodev,size={_TMP_BYTES},mode=1777",  # noqa: S108
            # The build's output: bytes and inodes capped by the kernel; the warden sends
            # the wheel to the host.
            "/out": f"rw,noexec,nosuid,nodev,size={out_bytes},nr_inodes={out_inodes},{owner}",
        },
        "mounts": [
            Mount("/src", str(request.source_dir), type="bind", read_only=True),
            Mount("/wheelhouse", str(request.wheelhouse), type="bind", read_only=True),
            Mount("/driver", str(driver_dir), type="bind", read_only=True),
        ],
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,  # equal: no swap
        "mem_swappiness": 0,
        "pids_limit": limits.pids,
        "nano_cpus": int(limits.cpus * 1e9),
        "ulimits": [Ulimit(name="core", soft=0, hard=0)],
        "init": False,  # the warden is PID 1: it reaps, and ends everything at the deadline
        "log_config": LogConfig(
            type="json-file", config={"max-size": str(log_file_bytes), "max-file": "2"}
        ),
        "labels": {**request.labels, ROLE_LABEL: ROLE_BUILD},
        "environment": {"PYTHONDONTWRITEBYTECODE": "1"},
        "working_dir": "/scratch",
        "detach": True,
    }


class _HeadReader(threading.Thread):
    """Reads the start of a container's log while it runs, then lets go."""

    def __init__(self, container: Container, limit: int) -> None:
        super().__init__(name=f"log-{container.id[:12]}", daemon=True)
        self._container = container
        self._cap = LogCap(limit)
        self._lock = threading.Lock()

    def run(self) -> None:
        # Following the engine's log file rather than attaching: a slow reader here
        # never stalls the build. Only the head is wanted, so stop once it is full.
        with contextlib.suppress(Exception):
            stream = self._container.logs(stream=True, follow=True)
            try:
                for chunk in stream:
                    with self._lock:
                        self._cap.feed(chunk)
                        if self._cap.head_full:
                            break
            finally:
                _close(stream)

    @property
    def head(self) -> bytes:
        with self._lock:
            return self._cap.head


class ChannelReader(threading.Thread):
    """Takes what the warden sends through the named pipe, within ``cap`` bytes.

    Opened before the container starts (so the warden always finds a reader while this
    process lives) and drained after it stopped. What comes in goes to ``sink``; bytes
    beyond ``cap`` are read and dropped, so the host's disk holds at most ``cap``.
    """

    def __init__(self, fifo: Path, sink: Path, cap: int) -> None:
        super().__init__(name=f"channel-{fifo.parent.name}", daemon=True)
        self._fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self._sink = sink
        self._cap = cap
        self._finishing = threading.Event()
        self.overflow = False

    def run(self) -> None:
        written = 0
        try:
            with self._sink.open("wb") as out:
                while True:
                    finishing = self._finishing.is_set()
                    ready, _, _ = select.select([self._fd], [], [], 0.2)
                    data = b""
                    if ready:
                        with contextlib.suppress(BlockingIOError):
                            data = os.read(self._fd, 1 << 16)
                    if data:
                        keep = data[: max(0, self._cap - written)]
                        self.overflow = self.overflow or len(keep) < len(data)
                        out.write(keep)
                        written += len(keep)
                        continue
                    if finishing:
                        return
                    if ready:  # end of file: no writer now; one may still come
                        time.sleep(0.05)
        finally:
            os.close(self._fd)

    def finish(self) -> None:
        """Drain what is left and stop (call once the container has stopped)."""
        self._finishing.set()
        self.join(30.0)


@dataclass(frozen=True)
class Delivery:
    """What the warden reported (untrusted: the build could write to the pipe too)."""

    ending: str  # exited, timeout, output-limit
    detail: str = ""


def unpack_channel(stream: Path, output_dir: Path) -> Delivery | None:
    """Read the warden's message: write ``result.json`` and the artifact to ``output_dir``.

    ``None`` when the stream is absent or malformed (nothing is written then).
    """
    try:
        with stream.open("rb") as f:
            line = f.readline(_HEADER_LIMIT)
            header = json.loads(line)
            if not isinstance(header, dict) or header.get("ending") not in _ENDINGS:
                return None
            result, artifact, size = header.get("result"), header.get("artifact"), header["size"]
            if not isinstance(size, int) or size < 0:
                return None
            if artifact is not None and (
                not isinstance(artifact, str) or Path(artifact).name != artifact
                or artifact[:1] in ("", ".") or artifact == RESULT_NAME
            ):  # fmt: skip
                return None
            start = f.tell()
            if stream.stat().st_size - start != (size if artifact else 0):
                return None  # short, or more than the warden sent
            if artifact is not None:
                with (output_dir / artifact).open("wb") as out:
                    shutil.copyfileobj(f, out)
    except (OSError, ValueError, KeyError):
        return None
    if isinstance(result, dict):
        (output_dir / RESULT_NAME).write_text(json.dumps(result), encoding="utf-8")
    return Delivery(str(header["ending"]), str(header.get("detail", ""))[:1000])


_ENDINGS = frozenset({"exited", "timeout", "output-limit"})


@dataclass(frozen=True)
class _Ending:
    exit_code: int | None
    status: BuildStatus | None = None  # set when the sandbox, not the driver, decided
    detail: str = ""


class DockerSandbox:
    """The :class:`~rebuilder.sandbox.model.Sandbox` backed by a Docker engine."""

    def __init__(
        self,
        *,
        client: DockerClient | None = None,
        poll_seconds: float = 0.25,
        grace_seconds: float = _HOST_GRACE_SECONDS,
    ) -> None:
        self._client = client
        self._poll_seconds = poll_seconds
        self._grace_seconds = grace_seconds
        self.protections: EngineProtections | None = None

    @property
    def client(self) -> DockerClient:
        """The engine client, connected (and its protections checked) on first use."""
        if self._client is None:
            self._client = connect()
        if self.protections is None:
            self.protections = check_engine(self._client)
        return self._client

    def run(self, request: BuildRequest) -> BuildOutcome:
        """Run ``request``; see :class:`~rebuilder.sandbox.model.Sandbox`."""

        started = time.monotonic()
        timings: dict[str, float] = {}
        _prepare_output(request.output_dir)
        driver_dir = stage_driver(request, grant_read(request.source_dir))
        try:
            return self._run_staged(request, driver_dir, started, timings)
        finally:
            shutil.rmtree(driver_dir, ignore_errors=True)

    def _run_staged(
        self, request: BuildRequest, driver_dir: Path, started: float, timings: dict[str, float]
    ) -> BuildOutcome:
        import docker  # noqa: PLC0415

        stream = driver_dir / "received"
        channel = ChannelReader(
            driver_dir / CHANNEL_NAME, stream, request.limits.output_bytes + 2 * _HEADER_LIMIT
        )
        channel.start()
        try:
            container, timings["create"] = self._create(request, driver_dir)
        except BaseException:
            channel.finish()
            raise
        try:
            reader = _HeadReader(container, request.limits.log_bytes)
            mark = time.monotonic()
            try:
                container.start()
            except docker.errors.DockerException as exc:
                raise SandboxError(f"the build container did not start: {exc}") from None
            reader.start()
            timings["start"] = time.monotonic() - mark
            mark = time.monotonic()
            try:
                ending = self._wait(container, request)
            except (docker.errors.DockerException, requests.RequestException) as exc:
                raise SandboxError(f"lost the build container: {exc}") from None
            timings["run"] = time.monotonic() - mark
            reader.join(_HEAD_SECONDS)
            log = read_log(container, request.limits.log_bytes, reader.head)
        finally:
            mark = time.monotonic()
            _remove(container)
            timings["remove"] = time.monotonic() - mark
            channel.finish()
        delivery = None if channel.overflow else unpack_channel(stream, request.output_dir)
        outcome = _outcome(request, ending, delivery, log)
        timings.update(outcome.timings)
        timings["total"] = time.monotonic() - started
        logger.info(
            "build %s in %.1fs: %s %s", container.id[:12], timings["total"],
            outcome.status.value, outcome.detail,
        )  # fmt: skip
        return BuildOutcome(
            status=outcome.status,
            artifact=outcome.artifact,
            log=outcome.log,
            exit_code=outcome.exit_code,
            missing=outcome.missing,
            detail=outcome.detail,
            timings=timings,
        )

    def _create(self, request: BuildRequest, driver_dir: Path) -> tuple[Container, float]:
        import docker  # noqa: PLC0415

        mark = time.monotonic()
        try:
            container = self.client.containers.create(
                request.image, build_command(request), **container_options(request, driver_dir)
            )
        except docker.errors.ImageNotFound:
            raise SandboxError(
                f"the sandbox image {request.image} is not present; "
                "build it with `rebuilder image build`"
            ) from None
        except docker.errors.DockerException as exc:
            raise SandboxError(f"the build container could not be created: {exc}") from None
        return container, time.monotonic() - mark

    def _wait(self, container: Container, request: BuildRequest) -> _Ending:
        # The warden ends the build at the limit itself; this deadline is the backstop
        # should the warden be stuck (or killed, which stops the container anyway).
        limits = request.limits
        deadline = time.monotonic() + limits.timeout_seconds + self._grace_seconds
        poll = min(0.05, self._poll_seconds)
        while True:
            container.reload()
            state = container.attrs.get("State", {})
            if state.get("Status") in {"exited", "dead"}:
                if state.get("OOMKilled"):
                    return _Ending(
                        state.get("ExitCode"),
                        BuildStatus.SANDBOX,
                        f"memory limit of {limits.memory_bytes} bytes hit",
                    )
                return _Ending(state.get("ExitCode"))
            if time.monotonic() >= deadline:
                _kill(container)
                return _Ending(
                    None,
                    BuildStatus.TIMEOUT,
                    f"wall-clock limit of {limits.timeout_seconds:g}s hit",
                )
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
            poll = min(poll * 2, self._poll_seconds)


# Exit codes of a container whose init was killed by SIGKILL or SIGTERM (128 + signal).
_KILLED_FROM_OUTSIDE = frozenset({137, 143})


def grant_read(source_dir: Path) -> dict[str, int]:
    """Make the source tree readable by the sandbox user; return the modes it changed.

    An sdist may ship files only their owner can read (``0600`` keys, ``0700`` folders).
    The build runs as another user, so they are opened up here, and the driver puts the
    original modes back on its own copy: the wheel must carry the sdist's modes.
    """
    changed: dict[str, int] = {}

    def open_up(path: Path) -> None:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            return
        mode = stat.S_IMODE(info.st_mode)
        wanted = mode | stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(info.st_mode) else 0)
        if wanted != mode:
            changed[path.relative_to(source_dir).as_posix()] = mode
            path.chmod(wanted)

    # The top folder too: an sdist whose own folder is 0750 is unreadable to the build
    # user as a whole (recorded as ".", put back on the driver's copy like the rest).
    open_up(source_dir)
    for top, dirs, files in os.walk(source_dir):
        for name in (*dirs, *files):
            open_up(Path(top, name))
    return changed


def _prepare_output(output_dir: Path) -> None:
    # A host folder the container never sees: the warden's delivery is unpacked here.
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RESULT_NAME).unlink(missing_ok=True)


def _kill(container: Container) -> None:
    with contextlib.suppress(Exception):
        container.kill()


def _remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except Exception as exc:  # noqa: BLE001 - removal is best effort; orphans are swept later
        if "No such container" not in str(exc) and "is already in progress" not in str(exc):
            logger.warning("could not remove build container %s: %s", container.id[:12], exc)


def _outcome(  # noqa: PLR0911 - one return per kind of ending reads clearest
    request: BuildRequest, ending: _Ending, delivery: Delivery | None, log: str
) -> BuildOutcome:
    """Turn how the container ended and what the warden sent into a verdict."""
    result = read_result(request.output_dir) if delivery else None
    timings = dict(result.timings) if result else {}
    if ending.status is not None:
        return BuildOutcome(ending.status, None, log, ending.exit_code, (), ending.detail, timings)
    code = ending.exit_code
    if code == EXIT_TIMEOUT or (delivery and delivery.ending == "timeout"):
        detail = f"wall-clock limit of {request.limits.timeout_seconds:g}s hit (in the sandbox)"
        return BuildOutcome(BuildStatus.TIMEOUT, None, log, code, (), detail, timings)
    if code == EXIT_OUTPUT_LIMIT or (delivery and delivery.ending == "output-limit"):
        detail = delivery.detail if delivery else "output over its limits"
        return BuildOutcome(BuildStatus.SANDBOX, None, log, code, (), detail, timings)
    if result is None and code in _KILLED_FROM_OUTSIDE:
        # SIGTERM/SIGKILL with no result and no OOM: the engine (or an operator) stopped
        # the container; the build itself never got to finish.
        return BuildOutcome(
            BuildStatus.INTERRUPTED, None, log, code, (),
            f"the build container was stopped from outside (exit {code})", timings,
        )  # fmt: skip
    if result is None:
        detail = f"the driver exited {code} without a result"
        if delivery is None:
            detail += " (nothing readable came back from the sandbox)"
        return BuildOutcome(BuildStatus.FAILED, None, log, code, (), detail, timings)
    if result.status == "missing-requirements":
        return BuildOutcome(
            BuildStatus.MISSING_REQUIREMENTS, None, log, code, result.missing,
            result.detail or "build requirements not installed", timings,
        )  # fmt: skip
    if result.status == "output-too-large":
        return BuildOutcome(BuildStatus.SANDBOX, None, log, code, (), result.detail, timings)
    if result.status != "ok" or code != 0 or result.artifact is None:
        detail = result.detail or f"the build exited {code}"
        return BuildOutcome(BuildStatus.FAILED, None, log, code, (), detail, timings)
    artifact = request.output_dir / result.artifact
    if artifact.is_symlink() or not artifact.is_file():
        return BuildOutcome(
            BuildStatus.FAILED, None, log, code, (), f"{result.artifact} was not written", timings
        )
    size = artifact.stat().st_size
    if size > request.limits.output_bytes:
        return BuildOutcome(
            BuildStatus.SANDBOX, None, log, code, (),
            f"output over the limit of {request.limits.output_bytes} bytes ({size})", timings,
        )  # fmt: skip
    return BuildOutcome(BuildStatus.OK, artifact, log, code, (), "", timings)


def _created_at(container: Container) -> datetime | None:
    created = str(container.attrs.get("Created", ""))
    # The engine writes nanoseconds; datetime takes at most microseconds.
    head, _, rest = created.partition(".")
    fraction = "".join(c for c in rest if c.isdigit())[:6]
    try:
        return datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00")
    except ValueError:
        return None


def remove_orphans(
    client: DockerClient, older_than: timedelta, *, labels: Mapping[str, str] | None = None
) -> list[str]:
    """Remove build containers created more than ``older_than`` ago; return their ids.

    A worker removes its containers itself; this sweeps those left by a worker that
    was killed. Run it at worker start-up and now and then. ``labels`` narrows the
    sweep (say, to one host's workers) beyond the build role every build carries.
    """
    wanted = [f"{ROLE_LABEL}={ROLE_BUILD}", *(f"{k}={v}" for k, v in (labels or {}).items())]
    now = datetime.now(UTC)
    removed: list[str] = []
    for container in client.containers.list(all=True, filters={"label": wanted}):
        created = _created_at(container)
        if created is None or now - created < older_than:
            continue
        _remove(container)
        removed.append(container.id)
        logger.info("removed orphaned build container %s", container.id[:12])
    return removed
