"""compose.yaml for real: PostgreSQL, RabbitMQ, migrate, scheduler, two workers and the
web app as containers (images built locally, as on a host with no registry), against a
fixture index on the Docker bridge. A watched genuine release comes out reproducible on
the status API, every long-running service reports healthy, and `down` cleans up."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rebuilder.attest.publish import load_or_create_key
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from tests.support.fleet import wait_for
from tests.support.index_server import FixtureIndex
from tests.support.releases import SETUPTOOLS, maintainer_build, publish
from tests.support.wheelhouse import load_into

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[3]
SDE = {"SOURCE_DATE_EPOCH": "1700000000"}


def _compose_binary() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    reason = "neither docker-compose nor the docker compose plugin is installed"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
    raise AssertionError  # unreachable


def _host_address(docker_client: Any, image: str) -> str:
    """The host's address as the engine's containers reach it: the ``host-gateway`` alias.

    The engine resolves the alias itself (to its default bridge's address unless told
    otherwise) whatever its state; the bridge network's IPAM ``Gateway`` is filled in on
    some starts of the engine and left out on others, so it is not read.
    """
    hosts = docker_client.containers.run(
        image,
        ["getent", "hosts", "rebuilder-test-host"],
        extra_hosts={"rebuilder-test-host": "host-gateway"},
        network_mode="bridge",
        remove=True,
    )
    address = hosts.decode().split()[0]
    with socket.socket() as probe:  # the fixture index listens there: it must be ours
        probe.bind((address, 0))
    return address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _image(tag: str, folder: str) -> str:
    built = subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(REPO / "images" / folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return tag


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    app = subprocess.run(
        [str(REPO / "scripts" / "build-app-image"), "pypi-rebuilder-app:test"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert app.returncode == 0, app.stderr[-3000:]
    return {
        "REBUILDER_APP_IMAGE": "pypi-rebuilder-app:test",
        "POSTGRES_IMAGE": _image("pypi-rebuilder-postgres:test", "postgres"),
        "RABBITMQ_IMAGE": _image("pypi-rebuilder-rabbitmq:test", "rabbitmq"),
    }


@pytest.fixture
def project(tmp_path: Path) -> Iterator[str]:
    name = f"rebuildertest{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(
        [*_compose_binary(), "-f", str(REPO / "compose.yaml"), "-p", name, "down", "-v"],
        capture_output=True,
        check=False,
        timeout=300,
    )


def _api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return json.load(answer)


def test_compose_runs_the_fleet(
    tmp_path: Path,
    images: dict[str, str],
    project: str,
    sandbox_image: ImageRef,
    sandbox: DockerSandbox,
    docker_client: Any,
) -> None:
    compose = _compose_binary()
    with FixtureIndex(host=_host_address(docker_client, sandbox_image.image_id)) as index:
        load_into(index, only=[SETUPTOOLS])
        release = maintainer_build(tmp_path, sandbox_image, sandbox, "1.0", SDE)
        publish(index, release)
        host_dir = tmp_path / "host"
        keys = tmp_path / "keys"
        host_dir.mkdir()
        load_or_create_key(keys / "signing-key.pem")
        web_port = _free_port()
        env = {
            **os.environ,
            **images,
            "REBUILDER_IMAGE": sandbox_image.image_id,
            "REBUILDER_INDEX_URL": index.url,
            "REBUILDER_HOST_DIR": str(host_dir),
            "REBUILDER_KEY_DIR": str(keys),
            "REBUILDER_WATCH_DEFAULT": "demo",
            "REBUILDER_WEB_PORT": str(web_port),
        }
        base = [*compose, "-f", str(REPO / "compose.yaml"), "-p", project]
        up = subprocess.run(
            [*base, "up", "-d", "--scale", "worker=2"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert up.returncode == 0, up.stderr[-4000:]

        def verdict() -> str | None:
            try:
                found = _api(web_port, "/api/v1/verdicts")
            except OSError:
                return None
            items = [v for v in found.get("items", []) if v["filename"] == release.wheel.name]
            return str(items[0]["verdict"]) if items else None

        try:
            result = wait_for("a verdict on the status API", verdict, timeout=300)
        except AssertionError:
            logs = subprocess.run(
                [*base, "logs", "--tail", "40"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            raise AssertionError(logs.stdout[-6000:]) from None
        assert result == "reproducible"

        def healthy() -> bool:
            ps = subprocess.run(
                ["docker", "ps", "--filter", f"label=com.docker.compose.project={project}",
                 "--format", "{{.Names}} {{.Status}}"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            lines = [line for line in ps.stdout.splitlines() if line.strip()]
            long_running = [
                line for line in lines if "_migrate_" not in line and "-migrate-" not in line
            ]
            return len(long_running) == 6 and all("(healthy)" in line for line in long_running)

        wait_for("every service to report healthy", healthy, timeout=180)
        workers = _api(web_port, "/api/v1/queue")
        assert len(workers.get("workers", [])) >= 2
