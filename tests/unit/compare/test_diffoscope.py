from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rebuilder.compare.diffoscope import (
    HTML_REPORT,
    TEXT_REPORT,
    DiffoscopeStatus,
    find_diffoscope,
    run_diffoscope,
)
from tests.unit.compare.models import CODE, build, entries, rewrite_record, with_data

needs_diffoscope = pytest.mark.skipif(find_diffoscope() is None, reason="diffoscope missing")


@pytest.fixture
def wheels(tmp_path: Path) -> tuple[Path, Path]:
    published = build(
        tmp_path, "demo-1.0-py3-none-any.whl", rewrite_record(with_data(entries(), CODE, b"evil\n"))
    )
    (tmp_path / "rebuilt").mkdir()
    rebuilt = build(tmp_path / "rebuilt", "demo-1.0-py3-none-any.whl", entries())
    return published, rebuilt


@needs_diffoscope
@pytest.mark.timeout(300)
def test_a_real_run_writes_both_reports(wheels: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "evidence"
    report = run_diffoscope(*wheels, out, timeout_seconds=240)
    assert report.status is DiffoscopeStatus.DIFFERENCES, report.message
    assert report.exit_code == 1
    assert report.text_report == out / TEXT_REPORT
    assert report.html_report == out / HTML_REPORT
    text = (out / TEXT_REPORT).read_text()
    assert "evil" in text
    assert "published/demo-1.0-py3-none-any.whl" in text
    assert str(tmp_path) not in text
    assert (out / HTML_REPORT).stat().st_size > 0


@needs_diffoscope
def test_a_tiny_time_cap_reports_timed_out(wheels: tuple[Path, Path], tmp_path: Path) -> None:
    report = run_diffoscope(*wheels, tmp_path / "out", timeout_seconds=0.01)
    assert report.status is DiffoscopeStatus.TIMED_OUT
    assert report.text_report is None
    assert report.seconds < 30


def test_a_missing_tool_is_reported(wheels: tuple[Path, Path], tmp_path: Path) -> None:
    report = run_diffoscope(
        *wheels, tmp_path / "out", executable=str(tmp_path / "no-such-diffoscope")
    )
    assert report.status is DiffoscopeStatus.MISSING


def test_a_failing_tool_is_an_error_not_an_exception(
    wheels: tuple[Path, Path], tmp_path: Path
) -> None:
    # the interpreter refuses diffoscope's options and exits with status 2
    report = run_diffoscope(*wheels, tmp_path / "out", executable=sys.executable)
    assert report.status is DiffoscopeStatus.ERROR
    assert report.exit_code == 2
    assert report.message


def test_unreadable_inputs_are_passed_as_they_are(tmp_path: Path) -> None:
    a, b = tmp_path / "a.whl", tmp_path / "b.whl"
    a.write_bytes(b"not a zip")
    b.write_bytes(b"not a zip either")
    report = run_diffoscope(a, b, tmp_path / "out", executable=sys.executable)
    assert report.status is DiffoscopeStatus.ERROR
