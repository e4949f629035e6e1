"""A zone with summer time inferred from source files of both seasons (fake zone rules)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rebuilder.plan.clock import infer_archive_inputs, zip_epoch
from rebuilder.plan.zone import ZoneRule, infer_zone, rule_key

WINTER = (2023, 1, 10, 12, 0, 0)
SUMMER = (2023, 7, 10, 12, 0, 0)
APRIL_FIRST = zip_epoch((2023, 4, 1, 0, 0, 0))
MAY_FIRST = zip_epoch((2023, 5, 1, 0, 0, 0))
NOVEMBER_FIRST = zip_epoch((2023, 11, 1, 0, 0, 0))


def _summer_time(
    standard: int, start: int = APRIL_FIRST, end: int = NOVEMBER_FIRST
) -> Callable[[float], int]:
    def offset_at(when: float) -> int:
        return standard + (3600 if start <= when < end else 0)

    return offset_at


CENTRAL = ZoneRule("Test/Central", "CET-1CEST,M3.5.0,M10.5.0/3", _summer_time(3600))
CENTRAL_TWIN = ZoneRule("Test/Twin", "XYZ-1XYZS,M3.5.0,M10.5.0/3", _summer_time(3600))
WESTERN = ZoneRule("Test/Western", "GMT0BST,M3.5.0/1,M10.5.0", _summer_time(0))
# the same offsets in January and July, but summer time starts a month later
OTHER_RULE = ZoneRule("Test/Other", "AAA-1AAAS,M5.1.0,M10.5.0/3", _summer_time(3600, MAY_FIRST))


@dataclass(frozen=True)
class Entry:
    name: str
    date_time: tuple[int, int, int, int, int, int]
    external_attr: int = 0o100644 << 16
    create_system: int = 3


def _pairs(standard: int) -> list[tuple[int, float]]:
    winter, summer = zip_epoch(WINTER), zip_epoch(SUMMER)
    return [(winter + standard, winter), (summer + standard + 3600, summer + 0.5)]


def test_two_seasons_of_offsets_name_the_zone_that_explains_them() -> None:
    assert infer_zone(_pairs(3600), [WESTERN, CENTRAL]) == CENTRAL
    assert infer_zone(_pairs(0), [WESTERN, CENTRAL]) == WESTERN


def test_one_offset_is_left_to_the_fixed_zone() -> None:
    winter = zip_epoch(WINTER)
    pairs = [(winter + 3600, winter), (winter + 3602, winter + 2)]
    assert infer_zone(pairs, [CENTRAL]) is None


def test_zones_that_differ_only_in_abbreviations_agree_others_make_it_ambiguous() -> None:
    assert rule_key(CENTRAL.posix) == rule_key(CENTRAL_TWIN.posix)
    # a rule written the other way round (negative summer time) that behaves the same
    inverted = ZoneRule("Test/Inverted", "IST-1GMT0,M10.5.0,M3.5.0/1", _summer_time(0))
    assert infer_zone(_pairs(0), [WESTERN, inverted]) == inverted  # first by name
    assert infer_zone(_pairs(3600), [CENTRAL_TWIN, CENTRAL]) == CENTRAL  # first by name
    assert infer_zone(_pairs(3600), [CENTRAL, OTHER_RULE]) is None
    assert infer_zone(_pairs(3600), [WESTERN]) is None  # nothing explains every pair


def test_the_archive_inputs_use_the_zone_for_sources_of_both_seasons() -> None:
    winter, summer = zip_epoch(WINTER), zip_epoch(SUMMER)
    sdist = {"a/w.py": float(winter - 3600), "a/s.py": float(summer - 7200)}
    entries = [
        Entry("a/w.py", WINTER),
        Entry("a/s.py", SUMMER),
        Entry("a-1.dist-info/METADATA", (2024, 1, 1, 0, 0, 0)),
        Entry("a-1.dist-info/RECORD", (2024, 1, 1, 0, 0, 2)),
    ]
    inputs = infer_archive_inputs(entries, sdist, zones=[WESTERN, CENTRAL])
    assert inputs.tz == CENTRAL.posix
    assert inputs.source_mtime is None
    # both sources are explained by the zone: only the generated files are replayed
    assert [name for name, _ in inputs.generated_times] == [
        "a-1.dist-info/METADATA",
        "a-1.dist-info/RECORD",
    ]
    # with no zone that fits, no one offset explains both: every file is replayed
    fixed = infer_archive_inputs(entries, sdist, zones=[])
    assert "," not in fixed.tz
    assert len(fixed.generated_times) == 4
