"""Lock parsers: every format gives the pins, hashes and filenames it holds."""

from __future__ import annotations

import pytest

from rebuilder.campaigns import LockFileError
from rebuilder.campaigns.locks import LockedFile, LockFormat, detect_format, parse_lock

A = "a" * 64
B = "b" * 64
C = "c" * 64

REQUIREMENTS = f"""
# a comment
--index-url http://127.0.0.1:9/simple/
attrs==24.2.0 \\
    --hash=sha256:{A} \\
    --hash=sha256:{B}
Requests[socks]==2.32.3 ; python_version >= "3.8"  # trailing comment
idna>=3
six
-r other.txt
packaging===24.1
git+https://example.invalid/x.git#egg=x
"""

UV_LOCK = f"""
version = 1
requires-python = ">=3.11"

[[package]]
name = "attrs"
version = "24.2.0"
source = {{ registry = "http://127.0.0.1:9/simple" }}
sdist = {{ url = "http://h/f/attrs-24.2.0.tar.gz", hash = "sha256:{A}", size = 1 }}
wheels = [
    {{ url = "http://h/f/attrs-24.2.0-py3-none-any.whl", hash = "sha256:{B}", size = 2 }},
]

[[package]]
name = "myapp"
version = "0.1.0"
source = {{ editable = "." }}

[[package]]
name = "tool"
version = "1.0"
source = {{ git = "https://example.invalid/tool?rev=1#abc" }}
"""

PYLOCK = f"""
lock-version = "1.0"
created-by = "test"

[[packages]]
name = "attrs"
version = "24.2.0"
index = "http://127.0.0.1:9/simple/"
wheels = [
  {{ url = "http://h/x/attrs-24.2.0-py3-none-any.whl", hashes = {{ sha256 = "{B}" }} }},
]
[packages.sdist]
name = "attrs-24.2.0.tar.gz"
url = "http://h/x/attrs-24.2.0.tar.gz"
hashes = {{ sha256 = "{A}" }}

[[packages]]
name = "local"
directory = {{ path = "./local" }}
"""

POETRY = f"""
[[package]]
name = "attrs"
version = "24.2.0"
description = ""
optional = false
python-versions = ">=3.7"
files = [
    {{file = "attrs-24.2.0-py3-none-any.whl", hash = "sha256:{B}"}},
    {{file = "attrs-24.2.0.tar.gz", hash = "sha256:{A}"}},
]

[[package]]
name = "Legacy_Pkg"
version = "1.0"
python-versions = "*"

[[package]]
name = "vcs"
version = "2.0"
python-versions = "*"
[package.source]
type = "git"
url = "https://example.invalid/vcs.git"

[metadata]
content-hash = "x"

[metadata.files]
Legacy_Pkg = [
    {{file = "legacy_pkg-1.0.tar.gz", hash = "sha256:{C}"}},
]
"""


def test_requirements_pins_hashes_and_skips_what_is_not_pinned() -> None:
    lock = parse_lock("requirements.txt", REQUIREMENTS)
    assert lock.format is LockFormat.REQUIREMENTS
    assert [(p.project, p.version, p.files) for p in lock.pins] == [
        ("attrs", "24.2.0", (LockedFile(A), LockedFile(B))),
        ("requests", "2.32.3", ()),
        ("packaging", "24.1", ()),
    ]
    reasons = {s.entry.split()[0]: s.reason for s in lock.skipped}
    assert set(reasons) == {
        "--index-url",
        "idna>=3",
        "six",
        "-r",
        "git+https://example.invalid/x.git#egg=x",
    }


def test_uv_lock_files_by_name_and_non_index_sources_skipped() -> None:
    lock = parse_lock("uv.lock", UV_LOCK)
    assert lock.format is LockFormat.UV
    assert len(lock.pins) == 1
    assert lock.pins[0].files == (
        LockedFile(A, "attrs-24.2.0.tar.gz"),
        LockedFile(B, "attrs-24.2.0-py3-none-any.whl"),
    )
    assert sorted(s.entry for s in lock.skipped) == ["myapp", "tool"]


def test_pylock_names_from_name_key_or_url() -> None:
    lock = parse_lock("pylock.toml", PYLOCK)
    assert [p.spec for p in lock.pins] == ["attrs==24.2.0"]
    assert lock.pins[0].files == (
        LockedFile(A, "attrs-24.2.0.tar.gz"),
        LockedFile(B, "attrs-24.2.0-py3-none-any.whl"),
    )
    assert [s.entry for s in lock.skipped] == ["local"]


def test_poetry_lock_inline_and_legacy_metadata_files() -> None:
    lock = parse_lock("poetry.lock", POETRY)
    assert lock.format is LockFormat.POETRY
    assert [(p.spec, p.files) for p in lock.pins] == [
        (
            "attrs==24.2.0",
            (
                LockedFile(B, "attrs-24.2.0-py3-none-any.whl"),
                LockedFile(A, "attrs-24.2.0.tar.gz"),
            ),
        ),
        ("legacy-pkg==1.0", (LockedFile(C, "legacy_pkg-1.0.tar.gz"),)),
    ]
    assert [s.entry for s in lock.skipped] == ["vcs"]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("-", UV_LOCK, LockFormat.UV),
        ("-", PYLOCK, LockFormat.PYLOCK),
        ("-", POETRY, LockFormat.POETRY),
        ("-", REQUIREMENTS, LockFormat.REQUIREMENTS),
        ("pylock.dev.toml", PYLOCK, LockFormat.PYLOCK),
        ("constraints.in", "a==1", LockFormat.REQUIREMENTS),
    ],
)
def test_format_from_name_or_content(name: str, text: str, expected: LockFormat) -> None:
    assert detect_format(name, text) is expected


def test_broken_toml_is_a_lock_file_error() -> None:
    with pytest.raises(LockFileError, match="not valid TOML"):
        parse_lock("uv.lock", "[[package]\nname=")
    with pytest.raises(LockFileError, match="lock-version"):
        parse_lock("pylock.toml", "[[packages]]\nname='x'\n")
