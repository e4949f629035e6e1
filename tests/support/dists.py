"""Small, real wheels and sdists made inside the tests (no network, no backend needed)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TIME = (2024, 1, 2, 3, 4, 6)
DEFAULT_EPOCH = 1704164646  # DEFAULT_TIME as UTC


@dataclass
class WheelEntry:
    name: str
    data: bytes
    date_time: tuple[int, int, int, int, int, int] = DEFAULT_TIME
    mode: int = 0o644
    compress_type: int = zipfile.ZIP_DEFLATED


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def wheel_entries(
    name: str = "demo",
    version: str = "1.0",
    files: Mapping[str, bytes] | None = None,
    generator: str = "bdist_wheel (0.42.0)",
    metadata_extra: str = "",
) -> list[WheelEntry]:
    """The entries of a plausible pure wheel, RECORD last and truthful."""
    files = files if files is not None else {f"{name}/__init__.py": b'__version__ = "1.0"\n'}
    dist_info = f"{name}-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{metadata_extra}\n"
    ).encode()
    wheel = (
        f"Wheel-Version: 1.0\nGenerator: {generator}\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n"
    ).encode()
    entries = [WheelEntry(path, data) for path, data in sorted(files.items())]
    entries += [
        WheelEntry(f"{dist_info}/METADATA", metadata),
        WheelEntry(f"{dist_info}/WHEEL", wheel),
    ]
    record = "".join(record_line(e.name, e.data) + "\n" for e in entries)
    record += f"{dist_info}/RECORD,,\n"
    entries.append(WheelEntry(f"{dist_info}/RECORD", record.encode()))
    return entries


def write_wheel(
    path: Path, entries: Iterable[WheelEntry], compresslevel: int | None = None
) -> Path:
    """Write ``entries`` in the given order, exactly as described."""
    with zipfile.ZipFile(path, "w") as zf:
        for e in entries:
            info = zipfile.ZipInfo(e.name, date_time=e.date_time)
            info.external_attr = (0o100000 | e.mode) << 16
            info.compress_type = e.compress_type
            zf.writestr(info, e.data, compresslevel=compresslevel)
    return path


def make_wheel(directory: Path, name: str = "demo", version: str = "1.0", **kwargs: object) -> Path:
    path = directory / f"{name}-{version}-py3-none-any.whl"
    return write_wheel(path, wheel_entries(name, version, **kwargs))  # type: ignore[arg-type]


@dataclass
class SdistMember:
    name: str  # relative to the top folder
    data: bytes = b""
    mode: int = 0o644
    mtime: int = DEFAULT_EPOCH
    type: bytes = tarfile.REGTYPE
    linkname: str = ""


@dataclass
class SdistSpec:
    name: str = "demo"
    version: str = "1.0"
    members: list[SdistMember] = field(default_factory=list)


def setuptools_sdist_members(name: str = "demo", version: str = "1.0") -> list[SdistMember]:
    """A minimal setuptools project that really builds."""
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
    ).encode()
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    return [
        SdistMember("pyproject.toml", pyproject),
        SdistMember("PKG-INFO", pkg_info),
        SdistMember(f"src/{name}/__init__.py", f'__version__ = "{version}"\n'.encode()),
    ]


def write_sdist(path: Path, spec: SdistSpec, top: str | None = None) -> Path:
    """A .tar.gz whose members sit under ``{name}-{version}/`` unless ``top`` says otherwise."""
    top = f"{spec.name}-{spec.version}" if top is None else top
    with tarfile.open(path, "w:gz") as tf:
        for m in spec.members:
            info = tarfile.TarInfo(f"{top}/{m.name}" if top else m.name)
            info.mode = m.mode
            info.mtime = m.mtime
            info.type = m.type
            info.linkname = m.linkname
            info.size = len(m.data) if m.type == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(m.data) if m.type == tarfile.REGTYPE else None)
    return path


def make_sdist(directory: Path, name: str = "demo", version: str = "1.0") -> Path:
    spec = SdistSpec(name, version, setuptools_sdist_members(name, version))
    return write_sdist(directory / f"{name}-{version}.tar.gz", spec)


def write_tree(directory: Path, members: Iterable[SdistMember]) -> Path:
    """Write ``members`` as an extracted source tree (modes and mtimes as given)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    dirs: set[Path] = set()
    for m in members:
        path = directory / m.name
        for parent in reversed(path.relative_to(directory).parents[:-1]):
            (directory / parent).mkdir(exist_ok=True)
            (directory / parent).chmod(0o755)
            dirs.add(directory / parent)
        if m.type == tarfile.SYMTYPE:
            path.symlink_to(m.linkname)
            continue
        path.write_bytes(m.data)
        path.chmod(m.mode)
        os.utime(path, (m.mtime, m.mtime))
    for d in [*sorted(dirs, reverse=True), directory]:
        os.utime(d, (DEFAULT_EPOCH, DEFAULT_EPOCH))
    return directory


def in_tree_backend_members(
    name: str = "demo",
    version: str = "1.0",
    *,
    build_prelude: str = "",
    dynamic_requires: Iterable[str] = (),
) -> list[SdistMember]:
    """A project whose PEP 517 backend lives in the tree itself (``requires = []``).

    Its wheel is written wheel-style: source files and generated ``.dist-info`` files are
    added with ``ZipFile.write`` (entry time from the file's mtime) and RECORD with the
    wall clock, so clock replay can be seen in the result. ``build_prelude`` is Python
    run at the start of ``build_wheel`` (to misbehave on purpose).
    """
    pyproject = (
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
    ).encode()
    prelude = "".join(f"    {line}\n" for line in build_prelude.splitlines())
    backend = f"""\
import os
import time
import zipfile

NAME, VERSION = {name!r}, {version!r}
DIST_INFO = f"{{NAME}}-{{VERSION}}.dist-info"


def get_requires_for_build_wheel(config_settings=None):
    return {list(dynamic_requires)!r}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
{prelude}    generated = os.path.join("build", DIST_INFO)
    os.makedirs(generated, exist_ok=True)
    with open(os.path.join(generated, "METADATA"), "w") as f:
        f.write(f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n")
    with open(os.path.join(generated, "WHEEL"), "w") as f:
        f.write("Wheel-Version: 1.0\\nGenerator: in-tree\\nRoot-Is-Purelib: true\\n")
        f.write("Tag: py3-none-any\\n")
    filename = f"{{NAME}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        zf.write(os.path.join("src", NAME, "__init__.py"), f"{{NAME}}/__init__.py")
        for entry in sorted(os.listdir(generated)):
            zf.write(os.path.join(generated, entry), f"{{DIST_INFO}}/{{entry}}")
        record = zipfile.ZipInfo(f"{{DIST_INFO}}/RECORD", time.gmtime(time.time())[:6])
        zf.writestr(record, "")
    return filename
""".encode()
    return [
        SdistMember("pyproject.toml", pyproject),
        SdistMember(
            "PKG-INFO", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        ),
        SdistMember("backend.py", backend),
        SdistMember(f"src/{name}/__init__.py", f'__version__ = "{version}"\n'.encode()),
    ]
