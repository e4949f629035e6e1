"""Releases made the way a maintainer would: built in the sandbox, published to a
local fixture index, and tampered copies of them."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rebuilder.archive.tarread import extract_sdist
from rebuilder.sandbox.docker import DockerSandbox
from rebuilder.sandbox.image import ImageRef
from rebuilder.sandbox.model import BuildRequest, BuildStatus
from tests.support.dists import make_sdist
from tests.support.index_server import FixtureIndex
from tests.support.wheelhouse import require

SETUPTOOLS = "setuptools==84.2.1"


@dataclass(frozen=True)
class Release:
    sdist: Path
    wheel: Path


def maintainer_build(
    tmp: Path,
    image: ImageRef,
    sandbox: DockerSandbox,
    version: str,
    env: dict[str, str],
    name: str = "demo",
) -> Release:
    """Build the wheel the way a maintainer would, in the sandbox, with ``env``."""
    sdist = make_sdist(tmp, name, version)
    source = extract_sdist(sdist, tmp / f"src-{name}-{version}")
    wheelhouse = tmp / "wheelhouse"
    wheelhouse.mkdir(exist_ok=True)
    wheels = require()
    backend = next(n for n in wheels if n.startswith("setuptools-84.2.1"))
    (wheelhouse / backend).write_bytes(wheels[backend].read_bytes())
    out = tmp / f"maintainer-{name}-{version}"
    out.mkdir()
    outcome = sandbox.run(
        BuildRequest(
            image=image.reference,
            source_dir=source,
            wheelhouse=wheelhouse,
            requirements=(SETUPTOOLS,),
            distribution="wheel",
            env={"TZ": "UTC", **env},
            output_dir=out,
        )
    )
    assert outcome.status is BuildStatus.OK, outcome.log
    assert outcome.artifact is not None
    return Release(sdist, outcome.artifact)


def publish(
    index: FixtureIndex, release: Release, wheel_bytes: bytes | None = None, project: str = "demo"
) -> None:
    now = datetime.now(UTC)
    index.add_file(project, release.sdist.name, release.sdist.read_bytes(), now)
    index.add_file(project, release.wheel.name, wheel_bytes or release.wheel.read_bytes(), now)


def tamper(wheel: Path, path: str) -> bytes:
    """Append a line to ``path`` and rewrite RECORD to match, as an attacker would."""
    source = zipfile.ZipFile(wheel)
    files = {i.filename: source.read(i) for i in source.infolist()}
    files[path] += b"import os  # injected\n"
    record_name = next(n for n in files if n.endswith(".dist-info/RECORD"))
    lines = []
    for name, data in files.items():
        if name == record_name:
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    files[record_name] = ("\n".join([*lines, f"{record_name},,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info, files[info.filename])
    return buffer.getvalue()
