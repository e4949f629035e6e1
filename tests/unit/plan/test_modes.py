from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from rebuilder.plan.modes import DATA_FILTER_MASK, infer_source_mode_mask, source_modes

UNIX, WINDOWS = 3, 0
T = (2024, 1, 2, 3, 4, 6)


@dataclass(frozen=True)
class Entry:
    name: str
    mode: int
    create_system: int = UNIX
    date_time: tuple[int, int, int, int, int, int] = T

    @property
    def external_attr(self) -> int:
        return (stat.S_IFREG | self.mode) << 16


SDIST = {
    "demo-1.0/src/demo/__init__.py": 0o664,
    "demo-1.0/src/demo/__init__.pyi": 0o664,
    "demo-1.0/src/demo/py.typed": 0o664,
    "demo-1.0/LICENSE": 0o664,
    "demo-1.0/PKG-INFO": 0o644,
}


def test_package_data_without_the_group_write_bit_under_umask_002_means_the_filter() -> None:
    entries = [
        Entry("demo/__init__.py", 0o664),  # recreated by the backend under umask 002
        Entry("demo/__init__.pyi", 0o644),  # copied from the filtered extraction
        Entry("demo/py.typed", 0o644),
        Entry("demo-1.0.dist-info/licenses/LICENSE", 0o644),
        Entry("demo-1.0.dist-info/METADATA", 0o644),
        Entry("demo-1.0.dist-info/RECORD", 0o664),
    ]
    assert infer_source_mode_mask(entries, SDIST, umask=0o002) == DATA_FILTER_MASK


def test_a_license_file_alone_is_evidence() -> None:
    entries = [
        Entry("demo/__init__.py", 0o664),
        Entry("demo-1.0.dist-info/licenses/LICENSE", 0o644),
    ]
    assert infer_source_mode_mask(entries, SDIST, umask=0o002) == DATA_FILTER_MASK


def test_one_file_keeping_a_bit_the_umask_does_not_explain_rules_the_filter_out() -> None:
    entries = [Entry("demo/__init__.pyi", 0o644), Entry("demo/py.typed", 0o666)]
    sdist = {**SDIST, "demo-1.0/src/demo/py.typed": 0o666}
    assert infer_source_mode_mask(entries, sdist, umask=0o002) == 0


def test_modes_as_in_the_sdist_need_no_filter() -> None:
    entries = [Entry("demo/__init__.py", 0o664), Entry("demo/__init__.pyi", 0o664)]
    assert infer_source_mode_mask(entries, SDIST, umask=0o002) == 0


def test_under_umask_022_cleared_bits_prove_nothing_and_kept_ones_contradict() -> None:
    cleared = [Entry("demo/__init__.py", 0o644), Entry("demo/__init__.pyi", 0o644)]
    assert infer_source_mode_mask(cleared, SDIST, umask=0o022) == 0
    kept = [Entry("demo/__init__.py", 0o644), Entry("demo/__init__.pyi", 0o664)]
    assert infer_source_mode_mask(kept, SDIST, umask=0o022) == 0


def test_entries_made_elsewhere_or_unmatched_are_ignored() -> None:
    entries = [
        Entry("demo/__init__.pyi", 0o644, create_system=WINDOWS),
        Entry("demo/unknown.pyi", 0o644),  # not in the sdist
        Entry("demo-1.0.dist-info/top_level.txt", 0o644),  # generated, not a copy
    ]
    assert infer_source_mode_mask(entries, SDIST, umask=0o002) == 0


def test_an_ambiguous_path_is_not_matched() -> None:
    sdist = {"demo-1.0/a/LICENSE": 0o664, "demo-1.0/b/LICENSE": 0o664}
    entries = [Entry("demo-1.0.dist-info/licenses/LICENSE", 0o644)]
    assert infer_source_mode_mask(entries, sdist, umask=0o002) == 0


def test_source_modes_reads_regular_files(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("")
    (tmp_path / "pkg" / "a.py").chmod(0o664)
    (tmp_path / "link").symlink_to("pkg/a.py")
    assert source_modes(tmp_path) == {"pkg/a.py": 0o664}
