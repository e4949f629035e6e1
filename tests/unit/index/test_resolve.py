from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from rebuilder.errors import ResolveError
from rebuilder.index.model import ResolvedPin
from rebuilder.index.resolve import (
    UvResolver,
    format_exclude_newer,
    parse_compile_output,
    validate_requirements,
)

A = "a" * 64
B = "b" * 64
C = "c" * 64


def test_parse_multi_line_pins() -> None:
    text = (
        f"setuptools==69.0.3 \\\n    --hash=sha256:{A} \\\n    --hash=sha256:{B}\n"
        f"Wheel==0.42.0 \\\n    --hash=sha256:{C.upper()}\n"
    )
    assert parse_compile_output(text) == [
        ResolvedPin("setuptools", "69.0.3", (A, B)),
        ResolvedPin("wheel", "0.42.0", (C,)),
    ]


def test_parse_markers_comments_and_options() -> None:
    text = (
        "# a comment\n--index-url http://127.0.0.1/simple/\n"
        f"tomli==2.0.1 ; python_version < '3.11' \\\n    --hash=sha256:{A}  # via x\n"
    )
    assert parse_compile_output(text) == [ResolvedPin("tomli", "2.0.1", (A,))]


def test_parse_requires_hashes_and_exact_pins() -> None:
    with pytest.raises(ResolveError, match="no sha256"):
        parse_compile_output("setuptools==69.0.3\n")
    with pytest.raises(ResolveError, match="not an exact pin"):
        parse_compile_output(f"setuptools>=69 --hash=sha256:{A}\n")


@pytest.mark.parametrize(
    "bad",
    [
        "--extra-index-url http://evil/simple",
        "-r other.txt",
        "demo @ http://127.0.0.1/demo.whl",
        "demo\n--index-url x",
        "",
        "not a requirement!",
    ],
)
def test_requirements_are_validated(bad: str) -> None:
    with pytest.raises(ResolveError):
        validate_requirements([bad])


def test_valid_requirements_pass() -> None:
    assert validate_requirements(["setuptools >= 61", "wheel; python_version>'3'"]) == [
        "setuptools>=61",
        'wheel; python_version > "3"',
    ]


def test_exclude_newer_format() -> None:
    cet = timezone(timedelta(hours=1))
    assert format_exclude_newer(datetime(2024, 1, 1, 1, 0, tzinfo=cet)) == "2024-01-01T00:00:00Z"
    # a dependency uploaded earlier in the same second must stay admitted
    fraction = datetime(2024, 1, 1, 0, 0, 0, 678013, tzinfo=UTC)
    assert format_exclude_newer(fraction) == "2024-01-01T00:00:00.678013Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_exclude_newer(datetime(2024, 1, 1))


def fake_uv(tmp_path: Path, script: str) -> str:
    path = tmp_path / "uv"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_command_line(tmp_path: Path) -> None:
    uv = fake_uv(tmp_path, 'echo "  --system-certs   Whether to load TLS certificates"\n')
    resolver = UvResolver("http://127.0.0.1:9/simple/", tmp_path / "cache", uv=uv)
    cmd = resolver.command(as_of=datetime(2024, 1, 1, tzinfo=UTC), python_version="3.11")
    assert cmd[:4] == [uv, "pip", "compile", "-"]
    joined = " ".join(cmd)
    for expected in (
        "--no-config",
        "--no-python-downloads",
        "--index-url http://127.0.0.1:9/simple/",
        "--python-version 3.11",
        "--python-platform x86_64-manylinux_2_36",
        "--only-binary :all:",
        "--generate-hashes",
        "--no-header",
        "--no-annotate",
        f"--cache-dir {tmp_path / 'cache'}",
        "--system-certs",
        "--exclude-newer 2024-01-01T00:00:00Z",
    ):
        assert expected in joined
    assert "--exclude-newer" not in resolver.command(as_of=None, python_version="3.11")


def test_resolve_feeds_stdin_and_scrubs_uv_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_INDEX_URL", "http://elsewhere/simple/")
    log = tmp_path / "log"
    answer = tmp_path / "answer"
    answer.write_text(f"demo==1.0 \\\n    --hash=sha256:{A}\n")
    uv = fake_uv(
        tmp_path,
        f'[ "$3" = "--help" ] && exit 0\ncat > {log}\nenv | grep ^UV_ >> {log}\ncat {answer}\n',
    )
    resolver = UvResolver("http://127.0.0.1:9/simple/", tmp_path / "cache", uv=uv)
    pins = resolver.resolve(["Demo>=1"], as_of=None, python_version="3.11")
    assert pins == (ResolvedPin("demo", "1.0", (A,)),)
    assert log.read_text() == "Demo>=1\n"  # no UV_ variable reached uv


def test_resolve_failure_carries_uv_key_lines(tmp_path: Path) -> None:
    uv = fake_uv(
        tmp_path,
        '[ "$3" = "--help" ] && exit 0\n'
        'echo "warning: something unimportant" >&2\n'
        'echo "\033[31merror\033[0m: No solution found when resolving dependencies:" >&2\n'
        'echo "  ╰─▶ Because there is no version of nothing-here, ..." >&2\nexit 1\n',
    )
    resolver = UvResolver("http://127.0.0.1:9/simple/", tmp_path / "cache", uv=uv)
    with pytest.raises(ResolveError) as info:
        resolver.resolve(
            ["nothing-here"], as_of=datetime(2024, 1, 1, tzinfo=UTC), python_version="3.11"
        )
    message = str(info.value)
    assert "cannot resolve nothing-here as of 2024-01-01T00:00:00Z" in message
    assert "error: No solution found" in message
    assert "no version of nothing-here" in message
    assert "warning" not in message
    assert "\033" not in message


def test_resolve_timeout(tmp_path: Path) -> None:
    uv = fake_uv(tmp_path, '[ "$3" = "--help" ] && exit 0\nexec sleep 5\n')
    resolver = UvResolver("http://127.0.0.1:9/simple/", tmp_path / "c", uv=uv, timeout=0.5)
    with pytest.raises(ResolveError, match=r"within 0.5s"):
        resolver.resolve(["demo"], as_of=None, python_version="3.11")


def test_no_requirements_needs_no_uv(tmp_path: Path) -> None:
    resolver = UvResolver("http://127.0.0.1:9/simple/", tmp_path, uv=str(tmp_path / "absent"))
    assert resolver.resolve([], as_of=None, python_version="3.11") == ()


def test_each_interpreter_resolves_with_its_own_platform(tmp_path: Path) -> None:
    uv = fake_uv(tmp_path, 'echo "  --system-certs   Whether to load TLS certificates"\n')
    resolver = UvResolver(
        "http://127.0.0.1:9/simple/",
        tmp_path / "cache",
        uv=uv,
        platforms={"3.9": "x86_64-manylinux_2_31"},
    )
    older = " ".join(resolver.command(as_of=None, python_version="3.9"))
    default = " ".join(resolver.command(as_of=None, python_version="3.11"))
    assert "--python-version 3.9 --python-platform x86_64-manylinux_2_31" in older
    assert "--python-version 3.11 --python-platform x86_64-manylinux_2_36" in default
