from __future__ import annotations

from dataclasses import dataclass

from rebuilder.plan.clock import ZIP_EPOCH, infer_archive_inputs, infer_umask, zip_epoch

UNIX = 3
T1 = (2024, 1, 2, 3, 4, 6)
T2 = (2024, 5, 6, 7, 8, 10)
T3 = (2024, 5, 6, 7, 8, 12)


@dataclass(frozen=True)
class Entry:
    name: str
    date_time: tuple[int, int, int, int, int, int]
    external_attr: int = (0o100644) << 16
    create_system: int = UNIX


def test_zip_time_is_read_as_utc() -> None:
    assert zip_epoch((1980, 1, 1, 0, 0, 0)) == ZIP_EPOCH
    assert zip_epoch(T1) == 1704164646


def test_one_time_everywhere_becomes_source_date_epoch() -> None:
    inputs = infer_archive_inputs([Entry("a/x.py", T1), Entry("a-1.dist-info/METADATA", T1)])
    assert inputs.source_date_epoch == zip_epoch(T1)
    assert inputs.build_clock is None


def test_many_times_replay_the_build_clock_of_generated_files() -> None:
    entries = [
        Entry("a/x.py", T1),
        Entry("a/y.py", (2023, 7, 7, 7, 7, 8)),
        Entry("a-1.dist-info/METADATA", T2),
        Entry("a-1.dist-info/WHEEL", T2),
        Entry("a-1.dist-info/RECORD", T3),
    ]
    inputs = infer_archive_inputs(entries)
    assert inputs.source_date_epoch is None
    assert inputs.build_clock == zip_epoch(T2)


def test_directory_entries_do_not_count() -> None:
    inputs = infer_archive_inputs([Entry("a/", T2), Entry("a/x.py", T1)])
    assert inputs.source_date_epoch == zip_epoch(T1)


def test_umask_is_read_from_generated_metadata() -> None:
    group_writable = Entry("a-1.dist-info/METADATA", T1, external_attr=0o100664 << 16)
    private = Entry("a-1.dist-info/METADATA", T1, external_attr=0o100600 << 16)
    assert infer_umask([group_writable]) == 0o002
    assert infer_umask([private]) == 0o066
    assert infer_umask([Entry("a-1.dist-info/METADATA", T1)]) == 0o022


def test_umask_defaults_without_unix_attributes() -> None:
    windows = Entry("a-1.dist-info/METADATA", T1, external_attr=0x20, create_system=0)
    no_bits = Entry("a-1.dist-info/METADATA", T1, external_attr=0)
    assert infer_umask([windows]) == 0o022
    assert infer_umask([no_bits]) == 0o022
