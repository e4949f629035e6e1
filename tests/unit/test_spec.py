from __future__ import annotations

import pytest

from rebuilder.errors import UsageError
from rebuilder.spec import ReleaseSpec, parse_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("attrs==26.1.0", ReleaseSpec("attrs", "26.1.0")),
        ("Zope.Interface == 7.0", ReleaseSpec("zope-interface", "7.0")),
        ("pkg:pypi/attrs@26.1.0", ReleaseSpec("attrs", "26.1.0")),
        ("pkg:pypi/Django@5.0?file_name=x", ReleaseSpec("django", "5.0")),
        ("requests", ReleaseSpec("requests", None)),
    ],
)
def test_specs_users_type(text: str, expected: ReleaseSpec) -> None:
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    "text", ["", "==1.0", "attrs==", "attrs==not a version", "pkg:npm/left-pad@1", "../etc"]
)
def test_bad_specs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_spec(text)
