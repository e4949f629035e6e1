"""Each kind of selection picks exactly the right files; kinds combine as a union."""

from __future__ import annotations

import pytest

from rebuilder.campaigns.memory import MemoryCampaignStore
from rebuilder.campaigns.model import FindingKind
from rebuilder.campaigns.selection import (
    BackendRange,
    LockInput,
    Selection,
    parse_generator,
    parse_window,
    record_picks,
    resolve,
)
from rebuilder.errors import UsageError
from rebuilder.verdict import Verdict
from tests.support.fakes import FakeIndex
from tests.unit.campaigns.fakes import sdist, sha, wheel, when


@pytest.fixture
def index() -> FakeIndex:
    return FakeIndex(
        [
            sdist("attrs", "24.1.0", day=1),
            wheel("attrs", "24.1.0", day=1),
            sdist("attrs", "24.2.0", day=5),
            wheel("attrs", "24.2.0", day=5),
            wheel("attrs", "25.0.0rc1", day=7),
            sdist("idna", "3.7", day=3),
            wheel("idna", "3.7", day=3),
            wheel("idna", "3.7", day=3, tag="cp311-cp311-manylinux_2_17_x86_64"),
        ]
    )


@pytest.fixture
def store() -> MemoryCampaignStore:
    return MemoryCampaignStore()


def names(selection: Selection, store: MemoryCampaignStore, index: FakeIndex) -> list[str]:
    return sorted(resolve(selection, store, index).picks)


def test_specs_and_purls_pick_their_release_and_bare_names_the_latest_final(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    picked = names(Selection(specs=("pkg:pypi/idna@3.7", "attrs")), store, index)
    assert picked == [
        "attrs-24.2.0-py3-none-any.whl",
        "attrs-24.2.0.tar.gz",
        "idna-3.7-cp311-cp311-manylinux_2_17_x86_64.whl",
        "idna-3.7-py3-none-any.whl",
        "idna-3.7.tar.gz",
    ]


def test_a_missing_release_is_a_finding_not_an_error(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    resolved = resolve(Selection(specs=("attrs==9.9", "nosuch==1.0")), store, index)
    assert resolved.picks == {}
    assert {(f.kind, f.subject) for f in resolved.findings} == {
        (FindingKind.NOT_FOUND, "attrs==9.9"),
        (FindingKind.NOT_FOUND, "nosuch==1.0"),
    }


def test_lock_picks_only_the_hashed_files_and_reports_hash_differences(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    good = wheel("attrs", "24.2.0").sha256
    requirements = f"attrs==24.2.0 --hash=sha256:{good}\nidna==3.7 --hash=sha256:{'f' * 64}\n"
    resolved = resolve(
        Selection(locks=(LockInput("requirements.txt", requirements),)), store, index
    )
    # attrs: the one wheel whose hash the lock lists. idna: no file has the lock's hash,
    # so every file the index serves is judged, each with the finding as its note.
    assert sorted(resolved.picks) == [
        "attrs-24.2.0-py3-none-any.whl",
        "idna-3.7-cp311-cp311-manylinux_2_17_x86_64.whl",
        "idna-3.7-py3-none-any.whl",
        "idna-3.7.tar.gz",
    ]
    assert resolved.picks["attrs-24.2.0-py3-none-any.whl"].note is None
    assert "no file of idna==3.7" in (resolved.picks["idna-3.7.tar.gz"].note or "")
    assert [(f.kind, f.subject) for f in resolved.findings] == [
        (FindingKind.LOCK_HASH, "idna==3.7")
    ]


def test_lock_with_filenames_flags_the_one_file_whose_hash_differs(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    sd = sdist("attrs", "24.2.0").sha256
    uv = f"""
[[package]]
name = "attrs"
version = "24.2.0"
source = {{ registry = "x" }}
sdist = {{ url = "http://h/attrs-24.2.0.tar.gz", hash = "sha256:{sd}" }}
wheels = [{{ url = "http://h/attrs-24.2.0-py3-none-any.whl", hash = "sha256:{"0" * 64}" }},
          {{ url = "http://h/attrs-24.2.0-py2-none-any.whl", hash = "sha256:{"1" * 64}" }}]
"""
    resolved = resolve(Selection(locks=(LockInput("uv.lock", uv),)), store, index)
    assert sorted(resolved.picks) == ["attrs-24.2.0-py3-none-any.whl", "attrs-24.2.0.tar.gz"]
    assert "expects sha256 " + "0" * 64 in (
        resolved.picks["attrs-24.2.0-py3-none-any.whl"].note or ""
    )
    assert resolved.picks["attrs-24.2.0.tar.gz"].note is None
    assert sorted((f.kind.value, f.subject) for f in resolved.findings) == [
        ("lock-hash", "attrs-24.2.0-py3-none-any.whl"),
        ("not-found", "attrs-24.2.0-py2-none-any.whl"),
    ]


def test_projects_with_and_without_an_upload_window(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    everything = names(Selection(projects=("attrs",)), store, index)
    assert len(everything) == 5
    window = (when(4), when(6))
    assert names(Selection(projects=("attrs", "idna"), project_window=window), store, index) == [
        "attrs-24.2.0-py3-none-any.whl",
        "attrs-24.2.0.tar.gz",
    ]


def test_uploaded_window_covers_only_files_the_database_knows(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    for f in index.files:
        if f.project == "idna" or f.version == "24.1.0":
            store.add_file(f)
    resolved = resolve(Selection(uploaded=(when(1), when(3, 13))), store, index)
    assert sorted(resolved.picks) == [
        "attrs-24.1.0-py3-none-any.whl",
        "attrs-24.1.0.tar.gz",
        "idna-3.7-cp311-cp311-manylinux_2_17_x86_64.whl",
        "idna-3.7-py3-none-any.whl",
        "idna-3.7.tar.gz",
    ]
    assert all(p.file_id is not None for p in resolved.picks.values())
    # [since, until): a file uploaded exactly at `until` is out
    assert names(Selection(uploaded=(when(1), when(3))), store, index) == [
        "attrs-24.1.0-py3-none-any.whl",
        "attrs-24.1.0.tar.gz",
    ]


def test_backend_range_matches_generator_lines(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    store.add_file(wheel("a", "1"), generator="hatchling 1.25.0")
    store.add_file(wheel("b", "1"), generator="hatchling 1.26.3")
    store.add_file(wheel("c", "1"), generator="hatchling 1.27.0")
    store.add_file(wheel("d", "1"), generator="bdist_wheel (0.43.0)")
    store.add_file(wheel("e", "1"), generator="hatchling-extra 1.26")
    store.add_file(wheel("f", "1"))  # not read yet
    resolved = resolve(Selection(backends=("hatchling>=1.25,<1.27",)), store, index)
    assert sorted(resolved.picks) == ["a-1-py3-none-any.whl", "b-1-py3-none-any.whl"]
    assert [(f.kind, f.detail.split()[0]) for f in resolved.findings] == [
        (FindingKind.NO_GENERATOR, "1")
    ]
    assert names(Selection(backends=("bdist-wheel==0.43",)), store, index) == [
        "d-1-py3-none-any.whl"
    ]


def test_latest_verdict_selection_uses_only_the_latest(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    fixed = store.add_file(wheel("a", "1"))
    store.add_verdict(fixed.id, Verdict.MISMATCH)
    store.add_verdict(fixed.id, Verdict.REPRODUCIBLE)
    broken = store.add_file(wheel("b", "1"))
    store.add_verdict(broken.id, Verdict.REPRODUCIBLE)
    store.add_verdict(broken.id, Verdict.MISMATCH)
    failed = store.add_file(wheel("c", "1"))
    store.add_verdict(failed.id, Verdict.FAILED)
    store.add_file(wheel("d", "1"))
    selection = Selection(verdicts=(Verdict.MISMATCH, Verdict.FAILED))
    assert names(selection, store, index) == ["b-1-py3-none-any.whl", "c-1-py3-none-any.whl"]


def test_kinds_combine_as_a_union_with_every_reason_kept(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    resolved = resolve(
        Selection(specs=("attrs==24.2.0",), projects=("attrs",), project_window=(when(5), None)),
        store,
        index,
    )
    pick = resolved.picks["attrs-24.2.0.tar.gz"]
    assert pick.reasons == ["spec attrs==24.2.0", "project attrs"]
    assert len(resolved.picks) == 3  # 24.2.0 sdist + wheel, 25.0.0rc1 wheel
    assert resolved.counts == {"specs": 2, "projects": 3}


def test_resolving_writes_nothing_and_recording_gives_every_pick_an_id(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    resolved = resolve(Selection(specs=("idna==3.7",)), store, index)
    assert resolved.unknown == 3
    assert store.files_by_filename(resolved.picks) == {}
    files = record_picks(resolved, store)
    assert len(files) == 3
    assert set(store.files_by_filename(resolved.picks)) == set(resolved.picks)
    again = resolve(Selection(specs=("idna==3.7",)), store, index)
    assert again.unknown == 0


def test_an_empty_selection_is_refused(store: MemoryCampaignStore, index: FakeIndex) -> None:
    with pytest.raises(UsageError):
        resolve(Selection(), store, index)


def test_windows_and_generators_parse() -> None:
    since, until = parse_window("2024-05-01..2024-05-02T12:00Z")
    assert since == when(1, 0) and until == when(2)
    assert parse_window("..2024-05-02")[0] is None
    with pytest.raises(UsageError):
        parse_window("2024-05-02..2024-05-01")
    with pytest.raises(UsageError):
        parse_window("2024-05-02")
    assert parse_generator("setuptools (70.1.0)") is not None
    assert parse_generator("garbage") is None
    assert not BackendRange.parse("flit-core>=3").matches("flit 3.9.0")
    assert BackendRange.parse("flit-core>=3").matches("flit_core 3.9.0")
    assert BackendRange.parse("hatchling<2").matches("hatchling 1.0.0rc1")


def test_lock_hash_matches_are_case_insensitive(
    store: MemoryCampaignStore, index: FakeIndex
) -> None:
    upper = sha("attrs-24.2.0-py3-none-any.whl").upper()
    resolved = resolve(
        Selection(locks=(LockInput("r.txt", f"attrs==24.2.0 --hash=sha256:{upper}"),)), store, index
    )
    assert list(resolved.picks) == ["attrs-24.2.0-py3-none-any.whl"]
    assert resolved.findings == []
