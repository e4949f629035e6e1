"""Choosing the build's interpreter from the published wheel's traces and upload date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from rebuilder.plan.interpreter import (
    BOOKWORM,
    BULLSEYE,
    MATRIX,
    TRIXIE,
    by_version,
    choose_interpreter,
    entry_point_versions,
    nearest,
    nspkg_versions,
    older_than,
)

RECENT = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    name: str
    data: bytes = b""


def _entry_points(*names: str) -> Entry:
    lines = "".join(f"{n} = demo.cli:main\n" for n in names)
    return Entry("demo-1.0.dist-info/entry_points.txt", f"[console_scripts]\n{lines}".encode())


def test_nspkg_pth_names_the_interpreter() -> None:
    assert nspkg_versions(["demo-1.0-py3.9-nspkg.pth", "demo/__init__.py"]) == {(3, 9)}
    assert nspkg_versions(["sub/demo-1.0-py3.9-nspkg.pth"]) == set()  # not at the top
    choice = choose_interpreter([Entry("demo-1.0-py3.9-nspkg.pth")], RECENT)
    assert choice.interpreter == BULLSEYE
    assert choice.traced == (3, 9)
    assert "namespace .pth" in choice.reason


def test_a_traced_version_outside_the_matrix_gets_the_nearest() -> None:
    choice = choose_interpreter([Entry("demo-2.0-py3.12-nspkg.pth")], RECENT)
    assert choice.interpreter == BOOKWORM  # 3.11 and 3.13 are as near: the older one
    assert "nearest" in choice.reason
    assert nearest((3, 13)) == TRIXIE
    assert nearest((3, 7)) == BULLSEYE


def test_versioned_console_scripts_with_their_twins_name_the_interpreter() -> None:
    assert entry_point_versions("[console_scripts]\npip = a:b\npip3 = a:b\npip3.10 = a:b\n") == {
        (3, 10)
    }
    assert entry_point_versions(
        "[console_scripts]\ntool = a:b\ntool-3.13 = a:b\ntool3 = a:b\n"
    ) == {(3, 13)}
    choice = choose_interpreter([_entry_points("tool", "tool3", "tool3.13")], RECENT)
    assert choice.interpreter == TRIXIE
    assert "console scripts" in choice.reason


def test_a_lone_name_ending_in_a_version_is_no_trace() -> None:
    # "codec2.7" alone may be anything; without "codec" and "codec2" it says nothing.
    assert entry_point_versions("[console_scripts]\ncodec2.7 = a:b\n") == set()
    assert entry_point_versions("not an ini file [") == set()
    choice = choose_interpreter([_entry_points("codec2.7")], RECENT)
    assert choice.interpreter == BOOKWORM
    assert choice.traced is None


def test_conflicting_traces_keep_the_default() -> None:
    entries = [Entry("a-1.0-py3.9-nspkg.pth"), Entry("b-1.0-py3.13-nspkg.pth")]
    choice = choose_interpreter(entries, RECENT)
    assert choice.interpreter == BOOKWORM
    assert "several" in choice.reason


@pytest.mark.parametrize(
    ("uploaded", "expected"),
    [
        (datetime(2019, 6, 1, tzinfo=UTC), BULLSEYE),  # before every matrix interpreter
        (datetime(2021, 6, 1, tzinfo=UTC), BULLSEYE),  # 3.9 out, 3.11 not yet
        (datetime(2022, 11, 1, tzinfo=UTC), BOOKWORM),
        (datetime(2025, 6, 1, tzinfo=UTC), BOOKWORM),  # the date never picks a newer one
    ],
)
def test_the_upload_date_rules_out_later_interpreters(uploaded: datetime, expected: object) -> None:
    choice = choose_interpreter([Entry("demo/__init__.py")], uploaded)
    assert choice.interpreter == expected
    assert choice.traced is None


def test_no_upload_time_keeps_the_default() -> None:
    assert choose_interpreter([], None).interpreter == BOOKWORM


def test_matrix_helpers() -> None:
    assert older_than(TRIXIE) == [BOOKWORM, BULLSEYE]
    assert older_than(BULLSEYE) == []
    assert by_version("3.13") == TRIXIE
    assert by_version("2.7") is None
    assert [i.python_platform for i in MATRIX] == [
        "x86_64-manylinux_2_31",
        "x86_64-manylinux_2_36",
        "x86_64-manylinux_2_41",
    ]
