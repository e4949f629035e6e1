"""Fixtures shared by the integration tests: a real Docker engine and the real image.

Without a reachable Docker engine these tests skip locally, and fail under CI (env
``CI`` set), where a missing engine is a broken machine, not a reason to test less.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from rebuilder.errors import SandboxError
from rebuilder.sandbox.docker import ROLE_BUILD, ROLE_LABEL, DockerSandbox
from rebuilder.sandbox.image import ImageRef, ensure_image

TEST_LABEL = "org.pypi-rebuilder.test"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Docker is required under CI: {reason}")
    pytest.skip(f"no usable Docker engine: {reason}")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        _unavailable(str(exc))
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: Any) -> ImageRef:
    try:
        return ensure_image(client=docker_client)
    except SandboxError as exc:
        _unavailable(exc.diagnostics())
        raise


@pytest.fixture
def test_label() -> dict[str, str]:
    """A label only this test's containers carry (other builds may share the engine)."""
    return {TEST_LABEL: uuid.uuid4().hex}


@pytest.fixture
def sandbox(docker_client: Any, test_label: dict[str, str]) -> Iterator[DockerSandbox]:
    yield DockerSandbox(client=docker_client)
    wanted = [f"{ROLE_LABEL}={ROLE_BUILD}", *(f"{k}={v}" for k, v in test_label.items())]
    left = docker_client.containers.list(all=True, filters={"label": wanted})
    assert not left, f"build containers left behind: {[c.id[:12] for c in left]}"


from tests.support.postgres import database_url  # noqa: E402 - a shared fixture

__all__ = ["database_url"]
