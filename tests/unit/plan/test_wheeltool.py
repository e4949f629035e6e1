from __future__ import annotations

import stat

import pytest

from rebuilder.plan.backend import parse_generator
from rebuilder.plan.wheeltool import installed_wheel, legacy_requires_dist, untyped_record

LEGACY = """Metadata-Version: 2.1
Name: demo
Version: 1.0
Requires-Dist: botocore (<1.45.0,>=1.44.8)
Requires-Dist: jmespath (<2.0.0,>=0.7.1)
Provides-Extra: crt
Requires-Dist: botocore[crt] (<2.0a0,>=1.21.0) ; extra == 'crt'

Requires-Dist: not (>=1) a header, the body
"""
PEP508 = """Metadata-Version: 2.1
Name: demo
Version: 1.0
Requires-Dist: botocore<1.45.0,>=1.44.8
Requires-Dist: botocore[crt] <2.0a0,>=1.21.0 ; extra == 'crt'
Requires-Dist: plain
"""
UNVERSIONED = """Metadata-Version: 2.1
Name: demo
Version: 1.0
Requires-Dist: plain
Requires-Dist: other ; python_version < "3.8"
"""
TYPED_RECORD = (0o664 | stat.S_IFREG) << 16
UNTYPED_RECORD = 0o664 << 16


def test_requires_dist_form_is_read_from_the_header_only() -> None:
    assert legacy_requires_dist(LEGACY) is True
    assert legacy_requires_dist(PEP508) is False
    assert legacy_requires_dist(UNVERSIONED) is None
    assert legacy_requires_dist(PEP508 + "\nRequires-Dist: x (>=1)\n") is False


def test_record_attributes_without_a_file_type_are_untyped() -> None:
    assert untyped_record(UNTYPED_RECORD)
    assert not untyped_record(TYPED_RECORD)
    assert not untyped_record(0o644 << 16)
    assert not untyped_record(None)


def test_legacy_requires_dist_under_setuptools_75_means_an_older_wheel() -> None:
    trace = installed_wheel(parse_generator("setuptools (75.1.0)"), LEGACY, TYPED_RECORD)
    assert trace is not None
    assert trace.requirement == "wheel<0.41.1"
    assert "legacy Requires-Dist" in trace.note


def test_untyped_record_sets_the_tighter_bound() -> None:
    trace = installed_wheel(parse_generator("setuptools (75.1.0)"), LEGACY, UNTYPED_RECORD)
    assert trace is not None
    assert trace.requirement == "wheel<0.40"
    assert len(trace.evidence) == 2


def test_untyped_record_counts_for_later_setuptools_but_metadata_does_not() -> None:
    # From 75.6 setuptools writes METADATA itself: the form says nothing of `wheel`.
    assert installed_wheel(parse_generator("setuptools (80.9.0)"), LEGACY, TYPED_RECORD) is None
    trace = installed_wheel(parse_generator("setuptools (80.9.0)"), PEP508, UNTYPED_RECORD)
    assert trace is not None
    assert trace.requirement == "wheel<0.40"


def test_pep508_metadata_and_typed_record_need_no_wheel() -> None:
    assert installed_wheel(parse_generator("setuptools (75.1.0)"), PEP508, TYPED_RECORD) is None
    assert installed_wheel(parse_generator("setuptools (75.1.0)"), None, None) is None


@pytest.mark.parametrize(
    "generator",
    [
        "setuptools (70.3.0)",  # vendored wheel modules only
        "bdist_wheel (0.38.4)",  # the wheel version is pinned by the Generator itself
        "poetry-core 1.2.0",  # writes its own METADATA (legacy form in old versions)
        "setuptools",  # no version: nothing to reason from
        None,
    ],
)
def test_other_generators_are_left_alone(generator: str | None) -> None:
    assert installed_wheel(parse_generator(generator), LEGACY, UNTYPED_RECORD) is None
