"""Fixtures for the sandbox's integration tests (engine and image: ../conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rebuilder.sandbox.image import ImageRef
from rebuilder.sandbox.model import BuildRequest, SandboxLimits
from tests.support.dists import SdistMember, in_tree_backend_members, write_tree

#: Small limits keep the misbehaving builds short.
SMALL_LIMITS = SandboxLimits(
    timeout_seconds=30.0,
    memory_bytes=256 * 1024**2,
    pids=64,
    cpus=1.0,
    log_bytes=64 * 1024,
    output_bytes=4 * 1024**2,
    scratch_bytes=256 * 1024**2,
)


@pytest.fixture
def make_request(
    tmp_path: Path, sandbox_image: ImageRef, test_label: dict[str, str]
) -> Callable[..., BuildRequest]:
    """A request for an in-tree-backend project; keyword arguments override fields."""

    def make(
        *,
        build_prelude: str = "",
        dynamic_requires: tuple[str, ...] = (),
        members: list[SdistMember] | None = None,
        **overrides: Any,
    ) -> BuildRequest:
        if members is None:
            members = in_tree_backend_members(
                build_prelude=build_prelude, dynamic_requires=dynamic_requires
            )
        source = write_tree(tmp_path / "src", members)
        wheelhouse = tmp_path / "wheelhouse"
        wheelhouse.mkdir(exist_ok=True)
        wheelhouse.chmod(0o755)
        fields: dict[str, Any] = {
            "image": sandbox_image.image_id,
            "source_dir": source,
            "wheelhouse": wheelhouse,
            "requirements": (),
            "distribution": "wheel",
            "env": {},
            "output_dir": tmp_path / "out",
            "limits": SMALL_LIMITS,
            "labels": test_label,
        }
        fields.update(overrides)
        return BuildRequest(**fields)

    return make
