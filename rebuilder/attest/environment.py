"""What a provenance records beyond the strategy, so a third party can re-run the build.

* the files mounted into the container (the driver and ``sitecustomize.py``) and the
  stabilizer code, each by sha256;
* the rebuilder's own version and, in a git checkout, its commit;
* the sandbox image: an OCI-style reference, its recipe files under ``images/sandbox``,
  its exact Debian package set and, when exported, its ``docker save`` tarball digest
  (:class:`~rebuilder.sandbox.model.ImageDescription`);
* the build log's digest, as a byproduct.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import rebuilder
from rebuilder.attest.statements import BuildEnvironment
from rebuilder.compare.stabilizers import STABILIZERS, ZIP_LAYOUT
from rebuilder.sandbox.model import ImageDescription

logger = logging.getLogger(__name__)

PACKAGE_ROOT = Path(rebuilder.__file__).resolve().parent
SOURCE_ROOT = PACKAGE_ROOT.parent
SANDBOX_FILES = ("sandbox/driver.py", "sandbox/clockreplay/sitecustomize.py")
"""Mounted read-only into every build container (see rebuilder.sandbox.docker)."""
STABILIZER_FILES = ("compare/stabilizers.py", "compare/judge.py")

ImageDescriber = Callable[[str], ImageDescription | None]


def _file(relative: str, role: str, **annotations: Any) -> dict[str, Any]:  # noqa: ANN401
    data = (PACKAGE_ROOT / relative).read_bytes()
    return {
        "name": f"rebuilder/{relative}",
        "digest": {"sha256": hashlib.sha256(data).hexdigest()},
        "annotations": {"role": role, **annotations},
    }


@functools.cache
def source_commit(root: Path = SOURCE_ROOT) -> tuple[str, bool] | None:
    """The git commit the rebuilder runs from and whether files differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
             "rebuilder"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None  # an installed wheel: the version alone names it
    return (head, bool(changed)) if len(head) == 40 else None


def image_fields(image: ImageDescription) -> dict[str, Any]:
    """The ``build-image`` descriptor's uri, name and annotations."""
    name, _, digest = image.oci_reference.partition("@")
    tag = next((t.rsplit(":", 1)[1] for t in image.tags if ":" in t), None)
    uri = f"pkg:oci/{quote(name.rsplit('/', 1)[-1], safe='')}@{quote(digest, safe='')}"
    if "/" in name:
        uri += f"?repository_url={quote(name.rsplit('/', 1)[0], safe='')}"
    if tag:
        uri += ("&" if "?" in uri else "?") + f"tag={quote(tag, safe='')}"
    annotations: dict[str, Any] = {
        "imageId": image.image_id,
        "ociReference": image.oci_reference,
        "repoDigests": list(image.repo_digests),
        "tags": list(image.tags),
    }
    if image.base:
        annotations["base"] = image.base
    return {"uri": uri, "name": image.tags[0] if image.tags else name, "annotations": annotations}


def image_dependencies(image: ImageDescription) -> list[dict[str, Any]]:
    """The image's recipe files, its Debian package set and its exported tarball."""
    deps: list[dict[str, Any]] = [
        {
            "name": f"images/sandbox/{name}",
            "digest": {"sha256": sha256},
            "annotations": {"role": "image-recipe"},
        }
        for name, sha256 in image.recipe
    ]
    if image.packages:
        deps.append(
            {
                "name": "debian-packages",
                "digest": {"sha256": image.packages_sha256},
                "annotations": {
                    "role": "image-packages",
                    "source": "dpkg-query -W inside the image",
                    "packages": list(image.packages),
                },
            }
        )
    if image.archive_sha256:
        deps.append(
            {
                "name": "docker-save.tar",
                "digest": {"sha256": image.archive_sha256},
                "annotations": {"role": "image-archive", "load": "docker load"},
            }
        )
    return deps


def build_environment(
    image_id: str,
    *,
    evidence: Path | None = None,
    describe: ImageDescriber | None = None,
) -> BuildEnvironment:
    """Everything :class:`BuildEnvironment` holds for a build in ``image_id``."""
    stabilizers = sorted({str(s.use) for s in STABILIZERS} | {str(ZIP_LAYOUT)})
    deps = [_file(f, "sandbox-driver") for f in SANDBOX_FILES]
    deps += [_file(f, "stabilizer-code", stabilizers=stabilizers) for f in STABILIZER_FILES]
    commit = source_commit()
    if commit is not None:
        deps.append(
            {
                "name": "pypi-rebuilder",
                "digest": {"gitCommit": commit[0]},
                "annotations": {
                    "role": "rebuilder-source",
                    "version": rebuilder.__version__,
                    "modified": commit[1],
                },
            }
        )
    image: dict[str, Any] | None = None
    description = describe(image_id) if describe is not None else None
    if description is not None:
        image = image_fields(description)
        deps += image_dependencies(description)
    byproducts = []
    log = evidence / "build.log" if evidence is not None else None
    if log is not None and log.is_file():
        byproducts.append(
            {
                "name": "build.log",
                "mediaType": "text/plain",
                "digest": {"sha256": hashlib.sha256(log.read_bytes()).hexdigest()},
            }
        )
    return BuildEnvironment(
        dependencies=tuple(deps),
        image=image,
        byproducts=tuple(byproducts),
        builder_commit=commit[0] if commit else None,
    )
