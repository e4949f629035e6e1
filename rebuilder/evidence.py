"""The evidence folder of one judged file: everything needed to check the verdict."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import FileResult


def _safe_component(text: str) -> str:
    """Names come from the index: keep one harmless path component."""
    cleaned = "".join(c if c.isalnum() or c in "._-+" else "_" for c in text)
    return cleaned.lstrip(".") or "_"


@dataclass(frozen=True)
class Evidence:
    """``{root}/{project}/{version}/{filename}/`` and the files kept there."""

    path: Path

    @classmethod
    def for_file(cls, root: Path, project: str, version: str, filename: str) -> Evidence:
        path = (
            root / _safe_component(project) / _safe_component(version) / _safe_component(filename)
        )
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def write_strategy(self, strategy: Strategy) -> None:
        (self.path / "strategy.json").write_text(strategy.dumps() + "\n", encoding="utf-8")

    def write_log(self, log: str) -> None:
        (self.path / "build.log").write_text(log, encoding="utf-8", errors="replace")

    def keep_rebuilt(self, artifact: Path) -> Path:
        folder = self.path / "rebuilt"
        folder.mkdir(exist_ok=True)
        target = folder / _safe_component(artifact.name)
        shutil.copyfile(artifact, target)
        return target

    def write_text_diff(self, text: str) -> None:
        """Unified diffs of the differing text files (rebuilder.compare.textdiff)."""
        (self.path / "differences.diff").write_text(text, encoding="utf-8")

    def set_aside(self, folder: str) -> None:
        """Move the comparison reports of a build that was superseded into ``folder``.

        A later build of the same file (another strategy) writes its own; the earlier
        ones stay, apart, so no report describes a rebuild it did not come from.
        """
        target = self.path / _safe_component(folder)
        for name in ("differences.diff", "diffoscope.txt", "diffoscope.html", "build.log"):
            source = self.path / name
            if source.is_file() and not source.is_symlink():
                target.mkdir(exist_ok=True)
                source.replace(target / name)

    def adopt(self, folder: str, *, strategy: Path, log: Path | None, rebuilt: Path) -> None:
        """Make another build of this file the one the folder describes.

        The current build's strategy, log, reports and rebuilt file move into ``folder``
        (kept, apart); ``strategy`` (a ``strategy.json``), ``log`` and ``rebuilt`` are
        copied in their place. Used when the git-tag route becomes the strategy.
        """
        self.set_aside(folder)
        target = self.path / _safe_component(folder)
        target.mkdir(exist_ok=True)
        for name in ("strategy.json", "rebuilt"):
            moved = self.path / name
            if moved.exists() and not moved.is_symlink():
                moved.replace(target / name)
        shutil.copyfile(strategy, self.path / "strategy.json")
        if log is not None and log.is_file():
            shutil.copyfile(log, self.path / "build.log")
        self.keep_rebuilt(rebuilt)

    def write_result(self, result: FileResult) -> None:
        text = json.dumps(result.to_json(), indent=2, sort_keys=True)
        (self.path / "result.json").write_text(text + "\n", encoding="utf-8")
