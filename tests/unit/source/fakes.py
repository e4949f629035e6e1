"""A typed in-memory twin of a git remote for the source-tracing logic."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from rebuilder.source.clone import TreeEntry, check_url
from rebuilder.source.errors import CloneError


@dataclass
class FakeRepository:
    """Commits are dicts of path -> bytes; tags name commits."""

    url: str
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    tag_map: dict[str, str] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def tags(self) -> dict[str, str]:
        return dict(self.tag_map)

    def fetch_tag(self, tag: str) -> str:
        self.fetched.append(tag)
        return self.tag_map[tag]

    def tree(self, commit: str) -> list[TreeEntry]:
        return [TreeEntry(p, 0o100644, len(d)) for p, d in sorted(self.commits[commit].items())]

    def archive(self, commit: str, target: Path, prefix: str) -> Path:
        with tarfile.open(target, "w") as tar:
            for path, data in sorted(self.commits[commit].items()):
                info = tarfile.TarInfo(prefix + path)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return target

    def blob(self, commit: str, path: str) -> bytes | None:
        return self.commits[commit].get(path)


@dataclass
class FakeCloner:
    repositories: dict[str, FakeRepository] = field(default_factory=dict)
    opened: list[str] = field(default_factory=list)

    def open(self, url: str) -> FakeRepository:
        check_url(url)
        self.opened.append(url)
        if url not in self.repositories:
            raise CloneError(f"git ls-remote {url} failed: repository not found")
        return self.repositories[url]
