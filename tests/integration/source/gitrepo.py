"""Local git repositories made in the tests (real git, ``file://`` URLs, no network)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

_ENV = {
    "GIT_AUTHOR_NAME": "Maintainer",
    "GIT_AUTHOR_EMAIL": "maintainer@example.org",
    "GIT_COMMITTER_NAME": "Maintainer",
    "GIT_COMMITTER_EMAIL": "maintainer@example.org",
    "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z",
    "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


class GitRepo:
    """A working repository at ``path``; ``url`` is its ``file://`` URL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=_ENV, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    def commit(self, files: Mapping[str, bytes], message: str = "change") -> str:
        for name, data in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def symlink(self, name: str, target: str) -> None:
        (self.path / name).symlink_to(target)

    def tag(self, name: str, *, annotated: bool = False, force: bool = False) -> None:
        args = ["tag", *(["-a", "-m", name] if annotated else []), *(["-f"] if force else [])]
        self.git(*args, name)


def project_files(name: str = "demo", version: str = "1.2.3") -> dict[str, bytes]:
    """A small setuptools project, as kept in git (no PKG-INFO, no egg-info)."""
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n\n'
        f'[project.urls]\nSource = "https://github.com/example/{name}"\n'
    ).encode()
    return {
        "pyproject.toml": pyproject,
        "README.md": b"# demo\n",
        f"src/{name}/__init__.py": f'__version__ = "{version}"\n\nANSWER = 42\n'.encode(),
        ".github/workflows/ci.yml": b"on: push\n",
        "tests/test_demo.py": b"def test():\n    assert True\n",
    }


def pkg_info(name: str = "demo", version: str = "1.2.3", source: str | None = None) -> bytes:
    url = source or f"https://github.com/example/{name}"
    return (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nProject-URL: Source, {url}\n"
    ).encode()
