"""Finding and naming the sandbox image, without an engine."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from rebuilder.errors import SandboxError
from rebuilder.sandbox import image
from rebuilder.sandbox.image import (
    DEFAULT_BASE,
    DEFAULT_SUITE,
    LEGACY_TOOLS,
    bootstrap_base,
    debian_mirror,
    default_context,
    ensure_image,
    image_ref,
    local_tag,
    suite_base,
)

INDEXTARGETS = (
    "http://mirror.example/debian-security/\tbookworm-security\tdeb\n"
    "http://mirror.example/debian/\tbookworm-updates\tdeb\n"
    "http://mirror.example/debian/\tbookworm\tdeb\n"
    "http://other.example/debian/\tbookworm\tdeb-src\n"
    "https://vendor.example/apt/\tnodistro\tdeb\n"
)


@dataclass
class FakeImage:
    id: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeImages:
    present: dict[str, FakeImage]
    pullable: dict[str, FakeImage] = field(default_factory=dict)
    pulled: list[str] = field(default_factory=list)

    def get(self, reference: str) -> FakeImage:
        if reference not in self.present:
            raise docker.errors.ImageNotFound(reference)
        return self.present[reference]

    def pull(self, reference: str) -> FakeImage:
        self.pulled.append(reference)
        if reference not in self.pullable:
            raise docker.errors.APIError("no registry")
        return self.pullable[reference]


@dataclass
class FakeClient:
    images: FakeImages


def copy_context(tmp_path: Path) -> Path:
    context = tmp_path / "context"
    shutil.copytree(default_context(), context)
    return context


def test_the_mirror_is_the_one_apt_uses_for_the_suite() -> None:
    assert debian_mirror("bookworm", INDEXTARGETS) == "http://mirror.example/debian/"


def test_another_suite_falls_back_to_the_main_archive() -> None:
    text = "http://mirror.example/debian/\ttrixie\tdeb\nhttp://x.example/\ttrixie-security\tdeb\n"

    assert debian_mirror("bookworm", text) == "http://mirror.example/debian/"


def test_no_debian_source_is_a_clear_error() -> None:
    with pytest.raises(SandboxError, match="no Debian archive"):
        debian_mirror("bookworm", "https://vendor.example/apt/\tnodistro\tdeb-src\n")


def test_the_local_tag_follows_every_input(tmp_path: Path) -> None:
    context = copy_context(tmp_path)
    first = local_tag(context, DEFAULT_BASE)

    assert first == local_tag(context, DEFAULT_BASE)
    assert first.startswith("pypi-rebuilder-sandbox:")
    assert local_tag(context, "python:3.11-slim-bookworm@sha256:" + "0" * 64) != first
    (context / "tools.txt").write_text((context / "tools.txt").read_text() + "\n")
    assert local_tag(context, DEFAULT_BASE) != first


def test_a_missing_context_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="REBUILDER_IMAGE"):
        local_tag(tmp_path, DEFAULT_BASE)


def test_the_digest_is_the_repo_digest_when_there_is_one() -> None:
    pulled = FakeImage(
        "sha256:" + "1" * 64,
        {"RepoDigests": ["other@sha256:" + "3" * 64, "python@sha256:" + "2" * 64]},
    )
    local = FakeImage("sha256:" + "4" * 64, {"RepoDigests": []})

    assert image_ref("python:3.11-slim", pulled).digest == "sha256:" + "2" * 64
    assert image_ref("pypi-rebuilder-sandbox:x", local).digest == "sha256:" + "4" * 64


def test_a_configured_image_is_used_as_is() -> None:
    ref = "registry.example/sandbox@sha256:" + "5" * 64
    images = FakeImages(present={}, pullable={ref: FakeImage("sha256:" + "6" * 64)})

    found = ensure_image(ref, client=FakeClient(images))

    assert found.reference == ref
    assert found.image_id == "sha256:" + "6" * 64
    assert images.pulled == [ref]


def test_a_configured_image_that_cannot_be_had_is_a_sandbox_error() -> None:
    with pytest.raises(SandboxError, match="could not be pulled"):
        ensure_image("registry.example/nope:1", client=FakeClient(FakeImages(present={})))


def test_an_already_built_local_image_is_found_without_building() -> None:
    tag = local_tag(default_context(), DEFAULT_BASE)
    images = FakeImages(present={tag: FakeImage("sha256:" + "7" * 64)})

    found = ensure_image(client=FakeClient(images))

    assert found.reference == tag
    assert found.digest == "sha256:" + "7" * 64


def test_bootstrap_without_debootstrap_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(image.shutil, "which", lambda name: None)

    with pytest.raises(SandboxError, match="apt-get install -y debootstrap"):
        bootstrap_base()


def test_an_interpreter_image_has_its_own_tag_and_tools(tmp_path: Path) -> None:
    context = copy_context(tmp_path)
    default = local_tag(context, DEFAULT_BASE)
    shutil.copy2(default_context() / LEGACY_TOOLS, context / LEGACY_TOOLS)
    legacy = local_tag(context, suite_base("bullseye"), LEGACY_TOOLS)
    assert legacy != default
    assert local_tag(context, DEFAULT_BASE) == default  # the default image is unchanged
    assert local_tag(context, suite_base("bullseye")) != legacy  # the tools count
    with pytest.raises(SandboxError, match="not in"):
        local_tag(context, DEFAULT_BASE, "tools-missing.txt")
    with pytest.raises(SandboxError, match="not a tools file"):
        local_tag(context, DEFAULT_BASE, "../tools.txt")


def test_suite_bases_are_local_names_and_refuse_odd_suites() -> None:
    assert suite_base("trixie") == "pypi-rebuilder-base:trixie"
    assert suite_base(DEFAULT_SUITE) == DEFAULT_BASE
    with pytest.raises(SandboxError, match="not a Debian suite"):
        suite_base("trixie; rm -rf /")


def test_a_missing_suite_base_is_bootstrapped_from_that_suite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, str]] = []

    def fake_bootstrap(tag: str, *, suite: str, context: Path) -> None:
        calls.append((tag, suite))

    monkeypatch.setattr(image, "bootstrap_base", fake_bootstrap)
    client = FakeClient(FakeImages(present={}))
    image._ensure_base(client, suite_base("bullseye"), default_context())
    assert calls == [("pypi-rebuilder-base:bullseye", "bullseye")]
