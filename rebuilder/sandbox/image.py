"""The sandbox image: find it, or build it (bootstrapping its base) on first use.

Two ways to a base:

* an official image pinned by digest (``python:3.11-slim-bookworm@sha256:...``), pulled
  from a registry, for production hosts;
* ``pypi-rebuilder-base:bookworm``, made here by ``debootstrap`` from the Debian mirror
  the host's apt already uses, for hosts with no registry.

On top, ``images/sandbox/Dockerfile`` adds the build user and the tools virtualenv from a
wheelhouse the host downloads with its own pip (hash-pinned in ``tools.txt``). The image
build itself runs with no network. The local tag is derived from a hash of everything
that goes into the image, so a change of Dockerfile, pins or base makes a new image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rebuilder.errors import SandboxError
from rebuilder.sandbox.model import IMAGE_REPOSITORY, ImageDescription

logger = logging.getLogger(__name__)

BASE_REPOSITORY = "pypi-rebuilder-base"
DEFAULT_SUITE = "bookworm"
DEFAULT_BASE = f"{BASE_REPOSITORY}:{DEFAULT_SUITE}"
_CONTEXT_FILES = ("Dockerfile", "tools.txt")
DEFAULT_TOOLS = "tools.txt"
#: The tools of bases whose python3 is older than 3.10 (``build`` 1.3 needs 3.10).
LEGACY_TOOLS = "tools-py39.txt"
_BOOTSTRAP_SCRIPT = "bootstrap-base.sh"
#: Engine architecture -> the manylinux platform tag pip downloads uv's wheel for.
_PLATFORMS = {
    "x86_64": "manylinux2014_x86_64",
    "amd64": "manylinux2014_x86_64",
    "aarch64": "manylinux2014_aarch64",
    "arm64": "manylinux2014_aarch64",
}


@dataclass(frozen=True)
class ImageRef:
    """A sandbox image as a build records it."""

    reference: str  # what was asked for or built (a tag, or a name pinned by digest)
    image_id: str  # the engine's content id (sha256:...)
    digest: str  # the registry digest when there is one, else the image id


def default_context() -> Path:
    """``images/sandbox`` of the source tree this package was loaded from."""
    return Path(__file__).resolve().parents[2] / "images" / "sandbox"


def _sources(context: Path, tools: str) -> dict[str, Path]:
    """The image's build files by their name in the build context."""
    return {name: context / (tools if name == DEFAULT_TOOLS else name) for name in _CONTEXT_FILES}


def _check_context(context: Path, tools: str = DEFAULT_TOOLS) -> None:
    if "/" in tools or not tools.endswith(".txt"):
        raise SandboxError(f"not a tools file name: {tools!r}")
    missing = [p.name for p in _sources(context, tools).values() if not p.is_file()]
    if missing:
        raise SandboxError(
            f"the sandbox image's build files ({', '.join(missing)}) are not in {context}; "
            "run from a source checkout, or configure a prebuilt image (REBUILDER_IMAGE)"
        )


def local_tag(context: Path, base: str, tools: str = DEFAULT_TOOLS) -> str:
    """The tag of the image built from ``context`` on ``base``: a hash of all its inputs.

    ``tools`` is the pinned tools file to install (it goes in as ``tools.txt``).
    """
    _check_context(context, tools)
    digest = hashlib.sha256()
    for name, path in _sources(context, tools).items():
        data = path.read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    digest.update(f"base\0{base}".encode())
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:16]}"


def image_ref(reference: str, image: Any) -> ImageRef:  # noqa: ANN401 - the SDK's Image
    """Describe a docker SDK ``Image``, preferring its registry digest."""
    image_id = str(image.id)
    name = reference.split("@", 1)[0]
    repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    digests = [str(d) for d in image.attrs.get("RepoDigests") or []]
    matching = [d for d in digests if d.split("@", 1)[0] == repo] or digests
    digest = matching[0].split("@", 1)[1] if matching else image_id
    return ImageRef(reference=reference, image_id=image_id, digest=digest)


def debian_mirror(suite: str = DEFAULT_SUITE, indextargets: str | None = None) -> str:
    """The Debian archive the host's apt uses for ``suite`` (or for its own release).

    ``indextargets`` is the output of ``apt-get indextargets`` in the format used
    below; by default apt is asked, so both sources formats are read the way apt reads
    them.
    """
    if indextargets is None:
        try:
            indextargets = subprocess.run(
                ["apt-get", "indextargets", "--format", "$(REPO_URI)\t$(RELEASE)\t$(TARGET_OF)"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SandboxError(
                f"cannot read the host's apt sources to find a Debian mirror ({exc}); "
                "give the mirror explicitly"
            ) from None
    exact: list[str] = []
    main: list[str] = []
    for line in indextargets.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[2] != "deb":
            continue
        uri, release, _ = parts
        if release == suite:
            exact.append(uri)
        elif "-" not in release and "/" not in release:  # not -security, -updates, ...
            main.append(uri)
    for uri in (*exact, *main):
        return uri
    raise SandboxError(
        "the host's apt sources name no Debian archive to bootstrap from; give the mirror "
        "explicitly"
    )


def _stream(command: list[str], what: str) -> None:
    """Run ``command`` with its output line by line in the log."""
    logger.info("%s: %s", what, " ".join(command))
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None  # noqa: S101 - guaranteed by stdout=PIPE
        for line in proc.stdout:
            logger.info("%s: %s", what, line.rstrip())
    if proc.returncode != 0:
        raise SandboxError(f"{what} failed (exit {proc.returncode}); see the log above")


def bootstrap_base(
    tag: str = DEFAULT_BASE,
    *,
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    context: Path | None = None,
) -> None:
    """Create the base image ``tag`` with debootstrap (root, Debian host, a mirror)."""
    context = context or default_context()
    script = context / _BOOTSTRAP_SCRIPT
    if not script.is_file():
        raise SandboxError(f"the bootstrap script is not in {context}")
    if shutil.which("debootstrap") is None:
        raise SandboxError(
            f"the base image {tag} is missing and debootstrap is not installed: "
            "install it (`apt-get install -y debootstrap`), or configure a base or "
            "sandbox image from a registry pinned by digest"
        )
    if os.geteuid() != 0:
        raise SandboxError(f"the base image {tag} is missing and debootstrap needs root")
    mirror = mirror or debian_mirror(suite)
    _stream(["bash", str(script), tag, mirror, suite], "bootstrap")


def download_tools(
    context: Path, wheelhouse: Path, architecture: str, tools: str = DEFAULT_TOOLS
) -> None:
    """Fetch the hash-pinned tool wheels with the host's pip (and its configuration)."""
    platform = _PLATFORMS.get(architecture.lower())
    if platform is None:
        raise SandboxError(
            f"no tool wheels are pinned for the engine's architecture {architecture}"
        )
    wheelhouse.mkdir(parents=True, exist_ok=True)
    _stream(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
         "--only-binary=:all:", "--no-deps", "--require-hashes", "--platform", platform,
         "--dest", str(wheelhouse), "-r", str(context / tools)],
        "tools",
    )  # fmt: skip


def _docker() -> Any:  # noqa: ANN401 - the SDK is untyped
    import docker  # noqa: PLC0415 - keep importing this module cheap

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise SandboxError(f"Docker is not reachable: {exc}") from None
    return client


def _find(client: Any, reference: str) -> Any | None:  # noqa: ANN401 - the SDK is untyped
    import docker  # noqa: PLC0415

    try:
        return client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise SandboxError(f"Docker could not look up {reference}: {exc}") from None


def _pull(client: Any, reference: str) -> Any:  # noqa: ANN401 - the SDK is untyped
    import docker  # noqa: PLC0415

    logger.info("pulling %s", reference)
    try:
        return client.images.pull(reference)
    except docker.errors.DockerException as exc:
        raise SandboxError(
            f"the image {reference} is not present and could not be pulled: {exc}"
        ) from None


def suite_base(suite: str) -> str:
    """The local base image bootstrapped from the Debian ``suite``."""
    if not suite.isalnum():
        raise SandboxError(f"not a Debian suite name: {suite!r}")
    return f"{BASE_REPOSITORY}:{suite}"


def _bootstrapped_suite(base: str) -> str | None:
    """The suite of a locally bootstrapped base tag, None for any other image."""
    repository, _, suite = base.partition(":")
    if repository == BASE_REPOSITORY and suite.isalnum():
        return suite
    return None


def _ensure_base(client: Any, base: str, context: Path) -> None:  # noqa: ANN401
    if _find(client, base) is not None:
        return
    suite = _bootstrapped_suite(base)
    if suite is not None:
        logger.warning(
            "base image %s missing: bootstrapping Debian %s with debootstrap (a few minutes)",
            base,
            suite,
        )
        bootstrap_base(base, suite=suite, context=context)
    else:
        _pull(client, base)


def _build_log(chunks: Iterator[Mapping[str, Any]]) -> str | None:
    """Log the engine's build output; return the error it reported, if any."""
    for chunk in chunks:
        if "error" in chunk:
            return str(chunk["error"]).strip()
        for line in str(chunk.get("stream", "")).splitlines():
            if line.strip():
                logger.info("image: %s", line.rstrip())
    return None


def build_image(
    *,
    base: str = DEFAULT_BASE,
    context: Path | None = None,
    client: Any = None,  # noqa: ANN401 - the SDK is untyped
    tools: str = DEFAULT_TOOLS,
) -> ImageRef:
    """Build the sandbox image now (bootstrapping or pulling its base when missing).

    This is ``rebuilder image build``. The tag is :func:`local_tag`; an existing image
    of that tag is replaced by the new build.
    """
    import docker  # noqa: PLC0415

    context = context or default_context()
    tag = local_tag(context, base, tools)
    client = client or _docker()
    _ensure_base(client, base, context)
    with tempfile.TemporaryDirectory(prefix="rebuilder-image-") as tmp:
        build_dir = Path(tmp)
        for name, path in _sources(context, tools).items():
            shutil.copy2(path, build_dir / name)
        download_tools(context, build_dir / "wheelhouse", str(client.info()["Architecture"]), tools)
        logger.info("building %s on %s", tag, base)
        try:
            error = _build_log(
                client.api.build(
                    path=str(build_dir),
                    tag=tag,
                    buildargs={"BASE": base},
                    network_mode="none",
                    pull=False,
                    rm=True,
                    forcerm=True,
                    decode=True,
                    labels={"org.pypi-rebuilder.base": base},
                )
            )
        except docker.errors.DockerException as exc:
            raise SandboxError(f"building the sandbox image failed: {exc}") from None
    if error:
        raise SandboxError(f"building the sandbox image failed: {error}")
    image = _find(client, tag)
    if image is None:
        raise SandboxError(f"the build of {tag} reported success but left no image")
    ref = image_ref(tag, image)
    logger.info("sandbox image %s is %s", tag, ref.image_id)
    return ref


def ensure_image(
    reference: str | None = None,
    *,
    base: str = DEFAULT_BASE,
    context: Path | None = None,
    client: Any = None,  # noqa: ANN401 - the SDK is untyped
    tools: str = DEFAULT_TOOLS,
) -> ImageRef:
    """The sandbox image to build in, built on first use.

    With ``reference`` (an operator's image, ideally pinned by digest) that image is
    used as is: it must be present or pullable. Otherwise the local image built from
    ``images/sandbox`` on ``base`` is used, and built first when absent.
    """
    client = client or _docker()
    if reference:
        image = _find(client, reference) or _pull(client, reference)
        return image_ref(reference, image)
    context = context or default_context()
    tag = local_tag(context, base, tools)
    image = _find(client, tag)
    if image is not None:
        return image_ref(tag, image)
    # Shown without -v: a first use waits minutes for this (-v shows each step).
    logger.warning(
        "sandbox image %s on %s is not built yet: building it (a few minutes; -v shows "
        "the progress)",
        tag,
        base,
    )
    return build_image(base=base, context=context, client=client, tools=tools)


RECIPE_FILES = (*_CONTEXT_FILES, _BOOTSTRAP_SCRIPT)
"""The files of ``images/sandbox`` an image is built from (recorded by digest)."""


def recipe_digests(
    context: Path | None = None, tools: str = DEFAULT_TOOLS
) -> tuple[tuple[str, str], ...]:
    """sha256 of every recipe file of ``images/sandbox`` that exists (``tools`` is the
    pinned tools file the image installed, recorded under its own name)."""
    context = context or default_context()
    names = [tools if name == DEFAULT_TOOLS else name for name in RECIPE_FILES]
    return tuple(
        (name, hashlib.sha256((context / name).read_bytes()).hexdigest())
        for name in names
        if (context / name).is_file()
    )


def _description_path(cache_dir: Path, image_id: str) -> Path:
    return cache_dir / "images" / f"{image_id.replace(':', '-')}.json"


def describe_image(
    image_id: str,
    cache_dir: Path,
    *,
    client: Any = None,  # noqa: ANN401 - the SDK is untyped
    context: Path | None = None,
) -> ImageDescription:
    """Describe the image ``image_id``; cached per image id (an id names fixed content).

    The package list comes from ``dpkg-query`` run inside the image with no network.
    """
    path = _description_path(cache_dir, image_id)
    if path.is_file():
        try:
            return ImageDescription.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable image description %s", path)
    client = client or _docker()
    image = _find(client, image_id)
    if image is None:
        raise SandboxError(f"the image {image_id} is not present to be described")
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    base = labels.get("org.pypi-rebuilder.base")
    tags = tuple(sorted(str(t) for t in image.tags))
    context = context or default_context()
    recipe: tuple[tuple[str, str], ...] = ()
    for tools in (DEFAULT_TOOLS, LEGACY_TOOLS):
        built_here = base and all(p.is_file() for p in _sources(context, tools).values())
        if built_here and local_tag(context, str(base), tools) in tags:  # these very files
            recipe = recipe_digests(context, tools)
            break
    description = ImageDescription(
        image_id=str(image.id),
        tags=tags,
        repo_digests=tuple(sorted(str(d) for d in image.attrs.get("RepoDigests") or [])),
        base=base,
        packages=_packages(client, str(image.id)),
        recipe=recipe,
    )
    _save_description(path, description)
    return description


def _packages(client: Any, image_id: str) -> tuple[str, ...]:  # noqa: ANN401
    import docker  # noqa: PLC0415

    try:
        output = client.containers.run(
            image_id,
            ["dpkg-query", "-W", "-f", "${Package}=${Version}\\n"],
            entrypoint=[],
            network_mode="none",
            remove=True,
            stdout=True,
            stderr=False,
        )
    except docker.errors.DockerException as exc:
        raise SandboxError(f"could not list the Debian packages of {image_id}: {exc}") from None
    text = output.decode("utf-8", errors="replace") if isinstance(output, bytes) else str(output)
    return tuple(sorted(line.strip() for line in text.splitlines() if line.strip()))


def _save_description(path: Path, description: ImageDescription) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".image-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(description.to_json(), fh, indent=1, sort_keys=True)
    Path(tmp).replace(path)


def export_image(
    image_id: str,
    target: Path,
    cache_dir: Path,
    *,
    client: Any = None,  # noqa: ANN401 - the SDK is untyped
) -> ImageDescription:
    """``docker save`` the image to ``target``; its description now with the tarball's digest.

    Another host loads the tarball (``docker load``) and checks it against the digest
    the provenance records.
    """
    client = client or _docker()
    description = describe_image(image_id, cache_dir, client=client)
    image = _find(client, image_id)
    if image is None:
        raise SandboxError(f"the image {image_id} is not present to be exported")
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as fh:
        for chunk in image.save(named=True):
            digest.update(chunk)
            fh.write(chunk)
    exported = replace(description, archive_sha256=digest.hexdigest())
    _save_description(_description_path(cache_dir, image_id), exported)
    return exported
