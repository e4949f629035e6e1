"""A small, typed stand-in for the part of the docker SDK the sandbox uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rebuilder.sandbox.docker import CHANNEL_NAME, Container, Containers, DockerClient
from rebuilder.sandbox.warden import send


@dataclass
class FakeContainer:
    """A container whose run is a function of its mounts, and whose state is scripted."""

    id: str
    image: str
    options: dict[str, Any]
    behaviour: Callable[[FakeContainer], None]
    log: bytes = b""
    state: dict[str, Any] = field(default_factory=lambda: {"Status": "created"})
    created: str = "2026-11-25T06:00:00.123456789Z"
    events: list[str] = field(default_factory=list)

    @property
    def attrs(self) -> Mapping[str, Any]:
        return {"State": self.state, "Created": self.created}

    @property
    def driver_dir(self) -> Path:
        return next(Path(m["Source"]) for m in self.options["mounts"] if m["Target"] == "/driver")

    @property
    def output_dir(self) -> Path:
        """The container's own /out (a tmpfs in a real one): never the host's folder."""
        out = self.driver_dir.parent / f"fake-tmpfs-out-{self.id[-6:]}"
        out.mkdir(exist_ok=True)
        return out

    def start(self) -> None:
        self.events.append("start")
        self.state = {"Status": "running"}
        self.behaviour(self)

    def reload(self) -> None:
        self.events.append("reload")

    def kill(self) -> None:
        self.events.append("kill")
        self.state = {"Status": "exited", "ExitCode": 137, "OOMKilled": False}

    def remove(self, *, force: bool) -> None:
        self.events.append(f"remove(force={force})")

    def logs(self, *, stream: bool, follow: bool) -> Iterator[bytes]:
        del stream, follow
        for start in range(0, len(self.log), 4096):
            yield self.log[start : start + 4096]

    def finish(
        self,
        code: int,
        result: Mapping[str, Any] | None,
        *,
        oom: bool = False,
        ending: str = "exited",
        detail: str = "",
    ) -> None:
        """End the run as the driver and the warden would: ``result`` sent to the host."""
        name = result.get("artifact") if result else None
        artifact = self.output_dir / name if isinstance(name, str) else None
        header = {
            "ending": ending,
            "exit_code": code,
            "detail": detail,
            "result": None if result is None else dict(result),
            "artifact": name if artifact is not None and artifact.is_file() else None,
            "size": artifact.stat().st_size if artifact is not None and artifact.is_file() else 0,
        }
        send(str(self.driver_dir / CHANNEL_NAME), header, artifact if header["artifact"] else None)
        self.state = {"Status": "exited", "ExitCode": code, "OOMKilled": oom}


@dataclass
class FakeContainers:
    behaviour: Callable[[FakeContainer], None] = lambda c: None
    created: list[FakeContainer] = field(default_factory=list)
    error: Exception | None = None

    def create(self, image: str, command: list[str], **kwargs: object) -> Container:
        if self.error is not None:
            raise self.error
        container = FakeContainer(
            f"{len(self.created):064x}", image, {"command": command, **kwargs}, self.behaviour
        )
        self.created.append(container)
        return container

    def list(self, *, all: bool, filters: Mapping[str, Any]) -> list[Container]:
        assert all
        wanted = filters["label"]
        wanted = [wanted] if isinstance(wanted, str) else wanted
        return [
            c
            for c in self.created
            if set(wanted) <= {f"{k}={v}" for k, v in c.options.get("labels", {}).items()}
        ]


SECCOMP_ONLY = {"SecurityOptions": ["name=seccomp,profile=default"], "CgroupVersion": "1"}


@dataclass
class FakeDocker:
    containers: Containers
    engine_info: Mapping[str, Any] = field(default_factory=lambda: dict(SECCOMP_ONLY))

    def info(self) -> Mapping[str, Any]:
        return self.engine_info

    @classmethod
    def running(
        cls, behaviour: Callable[[FakeContainer], None]
    ) -> tuple[FakeDocker, FakeContainers]:
        containers = FakeContainers(behaviour)
        return cls(containers), containers


def as_client(fake: FakeDocker) -> DockerClient:
    return fake
