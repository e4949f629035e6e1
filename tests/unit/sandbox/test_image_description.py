"""The sandbox image as a provenance records it: packages from inside the image (cached
per image id), the recipe only when the image was built from it, the exported tarball."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from rebuilder.errors import SandboxError
from rebuilder.sandbox.image import (
    LEGACY_TOOLS,
    ImageDescription,
    default_context,
    describe_image,
    export_image,
    local_tag,
)

IMAGE_ID = "sha256:" + "ab" * 32
BASE = "pypi-rebuilder-base:bookworm"


@dataclass
class FakeImage:
    id: str
    tags: list[str]
    attrs: dict[str, Any]

    def save(self, named: bool = False) -> list[bytes]:
        assert named
        return [b"tar-part-1", b"tar-part-2"]


@dataclass
class FakeContainers:
    output: bytes
    runs: list[tuple[str, list[str], dict[str, Any]]] = field(default_factory=list)

    def run(self, image: str, command: list[str], **kwargs: Any) -> bytes:
        self.runs.append((image, command, kwargs))
        return self.output


@dataclass
class FakeImages:
    image: FakeImage | None

    def get(self, reference: str) -> FakeImage:
        if self.image is None or reference != self.image.id:
            raise docker.errors.ImageNotFound(reference)
        return self.image


class FakeClient:
    def __init__(self, image: FakeImage | None, output: bytes) -> None:
        self.images = FakeImages(image)
        self.containers = FakeContainers(output)


def _client(tags: list[str]) -> FakeClient:
    attrs = {"RepoDigests": [], "Config": {"Labels": {"org.pypi-rebuilder.base": BASE}}}
    return FakeClient(FakeImage(IMAGE_ID, tags, attrs), b"python3=3.11.2-1+b1\nbash=5.2.15-2+b7\n")


def test_packages_come_from_inside_the_image_without_network_and_are_cached(
    tmp_path: Path,
) -> None:
    client = _client([local_tag(default_context(), BASE)])
    described = describe_image(IMAGE_ID, tmp_path, client=client)
    assert described.packages == ("bash=5.2.15-2+b7", "python3=3.11.2-1+b1")
    ((image, command, options),) = client.containers.runs
    assert image == IMAGE_ID and command[0] == "dpkg-query"
    assert options["network_mode"] == "none" and options["remove"] is True
    assert [name for name, _ in described.recipe] == [
        "Dockerfile",
        "tools.txt",
        "bootstrap-base.sh",
    ]
    dockerfile = (default_context() / "Dockerfile").read_bytes()
    assert dict(described.recipe)["Dockerfile"] == hashlib.sha256(dockerfile).hexdigest()
    assert described.oci_reference == f"pypi-rebuilder-sandbox@{IMAGE_ID}"
    # cached per image id: no second container
    assert describe_image(IMAGE_ID, tmp_path, client=client) == described
    assert len(client.containers.runs) == 1


def test_an_image_not_built_from_this_recipe_records_no_recipe(tmp_path: Path) -> None:
    described = describe_image(IMAGE_ID, tmp_path, client=_client(["someone/else:1"]))
    assert described.recipe == ()
    assert described.oci_reference == f"someone/else@{IMAGE_ID}"


def test_an_absent_image_cannot_be_described(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="not present"):
        describe_image(IMAGE_ID, tmp_path, client=FakeClient(None, b""))


def test_export_records_the_tarball_digest(tmp_path: Path) -> None:
    client = _client(["pypi-rebuilder-sandbox:0123"])
    target = tmp_path / "image.tar"
    exported = export_image(IMAGE_ID, target, tmp_path / "cache", client=client)
    assert target.read_bytes() == b"tar-part-1tar-part-2"
    assert exported.archive_sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    # later descriptions (the provenance's) carry it
    again = describe_image(IMAGE_ID, tmp_path / "cache", client=client)
    assert again.archive_sha256 == exported.archive_sha256
    assert ImageDescription.from_json(again.to_json()) == again


def test_an_older_interpreter_image_records_the_tools_file_it_installed(tmp_path: Path) -> None:
    legacy = "pypi-rebuilder-base:bullseye"
    client = _client([local_tag(default_context(), legacy, LEGACY_TOOLS)])
    client.images.image.attrs["Config"]["Labels"]["org.pypi-rebuilder.base"] = legacy  # type: ignore[union-attr]
    described = describe_image(IMAGE_ID, tmp_path, client=client)
    assert [name for name, _ in described.recipe] == [
        "Dockerfile",
        LEGACY_TOOLS,
        "bootstrap-base.sh",
    ]
    tools = (default_context() / LEGACY_TOOLS).read_bytes()
    assert dict(described.recipe)[LEGACY_TOOLS] == hashlib.sha256(tools).hexdigest()
