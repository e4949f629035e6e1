from __future__ import annotations

from dataclasses import dataclass

from rebuilder.plan.clock import ZIP_EPOCH, infer_archive_inputs, infer_umask, posix_tz, zip_epoch

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
    # `wheel` stamps RECORD with the clock it reads last: that is the clock to replay
    assert inputs.build_clock == zip_epoch(T3)
    times = dict(inputs.generated_times)
    assert times["a-1.dist-info/METADATA"] == zip_epoch(T2)
    assert times["a-1.dist-info/RECORD"] == zip_epoch(T3)


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


def _wheel_without_sde(sources: dict[str, tuple[int, int, int, int, int, int]]) -> list[Entry]:
    entries = [Entry(name, t) for name, t in sources.items()]
    entries += [Entry("a-1.dist-info/METADATA", T2), Entry("a-1.dist-info/RECORD", T2)]
    return entries


def test_sources_matching_the_sdist_keep_their_mtimes_in_utc() -> None:
    sdist = {"src/a/x.py": zip_epoch(T1) + 1.4, "src/a/y.py": zip_epoch((2023, 1, 1, 0, 0, 0))}
    entries = _wheel_without_sde({"a/x.py": T1, "a/y.py": (2023, 1, 1, 0, 0, 0)})
    inputs = infer_archive_inputs(entries, sdist)
    assert (inputs.tz, inputs.source_mtime) == ("UTC", None)
    assert inputs.build_clock == zip_epoch(T2)
    # sources whose times the sdist explains are not replayed; generated files are
    assert [name for name, _ in inputs.generated_times] == [
        "a-1.dist-info/METADATA",
        "a-1.dist-info/RECORD",
    ]


def test_a_constant_offset_from_the_sdist_is_the_build_time_zone() -> None:
    five_hours = 5 * 3600
    sdist = {
        "a/x.py": zip_epoch(T1) + five_hours + 0.7,
        "a/y.py": zip_epoch((2023, 1, 1, 0, 0, 0)) + five_hours,
    }
    entries = _wheel_without_sde({"a/x.py": T1, "a/y.py": (2023, 1, 1, 0, 0, 0)})
    inputs = infer_archive_inputs(entries, sdist)
    assert inputs.tz == "<-0500>5"  # five hours west of UTC
    assert inputs.source_mtime is None


def test_one_source_time_unlike_the_sdist_becomes_the_source_mtime() -> None:
    sdist = {"a/x.py": 1_600_000_000.0, "a/y.py": 1_650_000_000.0}
    entries = _wheel_without_sde({"a/x.py": (1980, 1, 1, 0, 0, 0), "a/y.py": (1980, 1, 1, 0, 0, 0)})
    inputs = infer_archive_inputs(entries, sdist)
    assert inputs.source_mtime == ZIP_EPOCH
    assert inputs.tz == "UTC"


def test_ambiguous_paths_are_not_used_for_time_zone_inference() -> None:
    sdist = {"a/x.py": zip_epoch(T1) + 3600.0, "b/a/x.py": zip_epoch(T1) + 3600.0}
    inputs = infer_archive_inputs(_wheel_without_sde({"a/x.py": T1, "a/z.py": T3}), sdist)
    assert inputs.tz == "UTC"


def test_posix_time_zones() -> None:
    assert posix_tz(0) == "UTC"
    assert posix_tz(2 * 3600) == "<+0200>-2"
    assert posix_tz(-(3 * 3600 + 30 * 60)) == "<-0330>3:30"


def test_umask_prefers_the_freshly_written_wheel_file_over_copied_metadata() -> None:
    copied = Entry("a-1.dist-info/METADATA", T1, external_attr=0o100644 << 16)
    fresh = Entry("a-1.dist-info/WHEEL", T1, external_attr=0o100664 << 16)
    assert infer_umask([copied, fresh]) == 0o002
    windows_wheel = Entry("a-1.dist-info/WHEEL", T1, external_attr=0x20, create_system=0)
    assert infer_umask([copied, windows_wheel]) == 0o022


def test_vendored_dist_info_folders_are_sources_not_the_wheels_own_metadata() -> None:
    entries = [
        Entry("pkg/_vendor/dep-1.0.dist-info/RECORD", T1),
        Entry("pkg/_vendor/dep-1.0.dist-info/WHEEL", T1, external_attr=0o100600 << 16),
        Entry("pkg-1.dist-info/WHEEL", T2),
        Entry("pkg-1.dist-info/RECORD", T3),
    ]
    inputs = infer_archive_inputs(entries)
    assert inputs.build_clock == zip_epoch(T3)
    assert inputs.umask == 0o022
