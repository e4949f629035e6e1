"""Metadata-writer inference: candidates, the byte-for-byte choice, the cache."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rebuilder.compare.stabilizers import sort_metadata_fields
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.plan.writer import (
    MetadataCache,
    candidate_versions,
    choose_writer,
    has_license_file,
)

UPLOAD = datetime(2021, 6, 1, tzinfo=UTC)


def release(version: str, when: datetime | None, *, yanked: bool = False) -> IndexFile:
    return IndexFile(
        "setuptools",
        version,
        f"setuptools-{version}-py3-none-any.whl",
        f"http://127.0.0.1:9/setuptools-{version}-py3-none-any.whl",
        "0" * 64,
        FileKind.WHEEL,
        when,
        yanked=yanked,
    )


RELEASES = [
    release("44.0.0", datetime(2019, 12, 1, tzinfo=UTC)),
    release("44.1.1", datetime(2020, 5, 1, tzinfo=UTC)),
    release("49.6.0", datetime(2020, 8, 1, tzinfo=UTC)),
    release("56.0.0", datetime(2021, 4, 1, tzinfo=UTC)),
    release("56.2.0", datetime(2021, 5, 1, tzinfo=UTC)),
    release("57.0.0", datetime(2021, 5, 20, tzinfo=UTC)),
    release("57.1.0", datetime(2021, 7, 1, tzinfo=UTC)),  # after the upload
    release("58.0.0rc1", datetime(2021, 5, 25, tzinfo=UTC)),  # a pre-release
    release("55.0.0", datetime(2021, 4, 2, tzinfo=UTC), yanked=True),
]


def test_candidates_are_the_newest_of_each_major_uploaded_before_the_wheel() -> None:
    found = candidate_versions(RELEASES, UPLOAD, current="57.0.0")

    # 57.1.0 is newer than the upload, 58.0.0rc1 a pre-release, 55.0.0 yanked;
    # 57.0.0 was the planner's own choice, tried already.
    assert found == ["56.2.0", "49.6.0", "44.1.1"]


def test_candidates_respect_the_builds_own_requirement_ranges() -> None:
    found = candidate_versions(
        RELEASES, UPLOAD, current=None, requirements=("setuptools>=45", "wheel", "setuptools<57")
    )

    assert found == ["56.2.0", "49.6.0"]


def test_a_license_file_field_rules_out_writers_that_never_wrote_one() -> None:
    found = candidate_versions(RELEASES, UPLOAD, current=None, license_file=True)

    assert found == ["57.0.0"]


def test_candidates_are_spread_over_the_range_when_there_are_many() -> None:
    many = [release(f"{major}.0.0", datetime(2020, 1, 1, tzinfo=UTC)) for major in range(40, 70)]

    found = candidate_versions(many, UPLOAD, current=None, limit=4)

    assert found == ["69.0.0", "59.0.0", "50.0.0", "40.0.0"]


def test_has_license_file_reads_the_header_only() -> None:
    assert has_license_file(b"Metadata-Version: 2.1\nLicense-File: LICENSE\n\nbody\n")
    assert not has_license_file(b"Metadata-Version: 2.1\n\nLicense-File: in the body\n")


PUBLISHED = b"Metadata-Version: 2.1\nName: demo\nPlatform: UNKNOWN\n\n"
OUTPUTS = {
    "57.0.0": b"Metadata-Version: 2.1\nName: demo\n\n",
    "49.6.0": PUBLISHED,
}


class FakeProducer:
    """Runs no sandbox: answers with a fixed METADATA per version and counts the runs."""

    def __init__(self, outputs: dict[str, bytes]) -> None:
        self.outputs = outputs
        self.runs: list[str] = []

    def __call__(self, version: str) -> tuple[bytes | None, str]:
        self.runs.append(version)
        if version not in self.outputs:
            return None, "does not resolve with the sdist's requirements"
        return self.outputs[version], ""


def test_the_candidate_writing_the_published_metadata_byte_for_byte_is_chosen(
    tmp_path: Path,
) -> None:
    produce = FakeProducer(OUTPUTS)

    choice = choose_writer(
        distribution="setuptools",
        candidates=["57.0.0", "56.2.0", "49.6.0", "44.1.1"],
        published=PUBLISHED,
        sdist_sha256="a" * 64,
        produce=produce,
        cache=MetadataCache(tmp_path),
    )

    assert choice.chosen == "49.6.0"
    assert choice.requirement == "setuptools==49.6.0"
    assert choice.tried == (
        ("57.0.0", "differs"),
        ("56.2.0", "does not resolve with the sdist's requirements"),
        ("49.6.0", "match"),
    )
    assert produce.runs == ["57.0.0", "56.2.0", "49.6.0"]  # stops at the match
    assert "setuptools==49.6.0 writes the published METADATA" in choice.note
    assert "57.0.0 (differs)" in choice.note


def test_no_candidate_matching_keeps_the_planners_choice(tmp_path: Path) -> None:
    produce = FakeProducer({"57.0.0": b"other\n", "49.6.0": PUBLISHED + b"\n"})

    choice = choose_writer(
        distribution="setuptools",
        candidates=["57.0.0", "49.6.0"],
        published=PUBLISHED,
        sdist_sha256="a" * 64,
        produce=produce,
        cache=None,
    )

    assert choice.chosen is None
    assert choice.requirement is None
    assert choice.tried == (("57.0.0", "differs"), ("49.6.0", "differs"))
    assert "the planner's choice kept" in choice.note


SORTED = b"Metadata-Version: 2.1\nName: demo\nRequires-Dist: a\nRequires-Dist: b\n\n"
UNSORTED = b"Metadata-Version: 2.1\nName: demo\nRequires-Dist: b\nRequires-Dist: a\n\n"
FIELD_ORDER = ("metadata-field-order@1", sort_metadata_fields)


def test_a_candidate_equal_only_after_a_named_normalization_is_chosen_and_says_so() -> None:
    produce = FakeProducer({"60.0.0": b"other\n", "59.0.0": UNSORTED, "58.0.0": UNSORTED})

    choice = choose_writer(
        distribution="setuptools",
        candidates=["60.0.0", "59.0.0", "58.0.0"],
        published=SORTED,
        sdist_sha256="a" * 64,
        produce=produce,
        cache=None,
        normalization=FIELD_ORDER,
    )

    assert choice.chosen == "59.0.0"  # the newest of the near matches
    assert choice.normalized_by == "metadata-field-order@1"
    assert produce.runs == ["60.0.0", "59.0.0", "58.0.0"]  # still looked for the bytes
    assert "up to metadata-field-order@1" in choice.note
    assert "byte for byte (tried" not in choice.note


def test_a_byte_for_byte_writer_wins_over_an_earlier_near_match() -> None:
    produce = FakeProducer({"59.0.0": UNSORTED, "58.0.0": SORTED})

    choice = choose_writer(
        distribution="setuptools",
        candidates=["59.0.0", "58.0.0"],
        published=SORTED,
        sdist_sha256="a" * 64,
        produce=produce,
        cache=None,
        normalization=FIELD_ORDER,
    )

    assert (choice.chosen, choice.normalized_by) == ("58.0.0", None)


def test_without_a_normalization_a_near_match_is_not_chosen() -> None:
    choice = choose_writer(
        distribution="setuptools",
        candidates=["59.0.0"],
        published=SORTED,
        sdist_sha256="a" * 64,
        produce=FakeProducer({"59.0.0": UNSORTED}),
        cache=None,
    )

    assert choice.chosen is None


def test_outputs_are_cached_per_sdist_and_candidate(tmp_path: Path) -> None:
    cache = MetadataCache(tmp_path)
    first = FakeProducer(OUTPUTS)
    choose_writer(
        distribution="setuptools",
        candidates=["57.0.0", "49.6.0"],
        published=PUBLISHED,
        sdist_sha256="a" * 64,
        produce=first,
        cache=cache,
    )
    again = FakeProducer({})  # would give nothing: only the cache can answer

    choice = choose_writer(
        distribution="setuptools",
        candidates=["57.0.0", "49.6.0"],
        published=PUBLISHED,
        sdist_sha256="a" * 64,
        produce=again,
        cache=cache,
    )
    other_sdist = choose_writer(
        distribution="setuptools",
        candidates=["49.6.0"],
        published=PUBLISHED,
        sdist_sha256="b" * 64,
        produce=again,
        cache=cache,
    )

    assert choice.chosen == "49.6.0"
    assert again.runs == ["49.6.0"]  # only for the other sdist
    assert other_sdist.chosen is None
    assert cache.get("a" * 64, "setuptools", "57.0.0") == OUTPUTS["57.0.0"]
    assert cache.get("b" * 64, "setuptools", "57.0.0") is None
