from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st
from packaging.version import Version

from rebuilder.source.tags import match_tag, tag_version

COMMIT = "a" * 40
OTHER = "b" * 40


def test_usual_spellings_match() -> None:
    for tag in (
        "v1.2.3",
        "1.2.3",
        "demo-1.2.3",
        "demo_v1.2.3",
        "release-1.2.3",
        "demo/v1.2.3",
        "demo@1.2.3",
        "version-1.2.3",
        "V1.2.3",
        "Demo-1.2.3",
        "release/v1.2.3",
    ):
        match = match_tag({tag: COMMIT}, "demo", "1.2.3")
        assert (match.tag, match.commit) == (tag, COMMIT), tag


def test_near_misses_never_match() -> None:
    for tag in (
        "v1.2.30",
        "1.2.3rc1",
        "1.2.3.post1",
        "v1.2.3-dirty",
        "v11.2.3",
        "21.2.3",
        "other-1.2.3",
        "demo-extra-1.2.3",
        "1.2",
        "1.2.3a",
        "latest",
        "v1.2.3x",
    ):
        match = match_tag({tag: COMMIT}, "demo", "1.2.3")
        assert match.tag is None, tag
        assert match.reason == "no tag among 1 names version 1.2.3"


def test_1_2_3_beside_1_2_30() -> None:
    match = match_tag({"v1.2.30": OTHER, "v1.2.3": COMMIT, "1.2.30": OTHER}, "demo", "1.2.3")
    assert (match.tag, match.commit) == ("v1.2.3", COMMIT)


def test_pep440_normalization() -> None:
    assert match_tag({"v1.0.0": COMMIT}, "demo", "1.0").tag == "v1.0.0"
    assert match_tag({"2024.01.05": COMMIT}, "demo", "2024.1.5").tag == "2024.01.05"
    assert match_tag({"v1.0-rc1": COMMIT}, "demo", "1.0rc1").tag == "v1.0-rc1"
    assert match_tag({"zope.interface-5.0": COMMIT}, "zope-interface", "5.0").tag


def test_name_prefixed_tags_win_and_conflicts_are_not_guessed() -> None:
    match = match_tag({"v1.0": OTHER, "demo-1.0": COMMIT}, "demo", "1.0")
    assert (match.tag, match.commit) == ("demo-1.0", COMMIT)
    conflict = match_tag({"v1.0": OTHER, "1.0": COMMIT}, "demo", "1.0")
    assert conflict.tag is None
    assert conflict.reason is not None
    assert "different commits" in conflict.reason
    same = match_tag({"v1.0": COMMIT, "1.0": COMMIT}, "demo", "1.0")
    assert same.tag == "1.0"


def test_no_tag_says_what_was_tried() -> None:
    match = match_tag({}, "demo", "1.0")
    assert match.tag is None
    assert {"v1.0", "1.0", "demo-1.0", "release-1.0"} <= set(match.tried)


versions = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40)).map(
    lambda t: ".".join(map(str, t))
)
prefixes = st.sampled_from(["", "v", "demo-", "demo_v", "release-", "demo/v", "demo@"])


@given(prefixes, versions, versions)
def test_a_tag_for_another_version_never_matches(prefix: str, tagged: str, wanted: str) -> None:
    match = match_tag({prefix + tagged: COMMIT}, "demo", wanted)
    assert (match.tag is not None) == (Version(tagged) == Version(wanted))


@given(prefixes, versions, st.integers(0, 3))
def test_trailing_zeros_are_equivalent(prefix: str, version: str, zeros: int) -> None:
    tag = prefix + version + ".0" * zeros
    parsed = tag_version(tag, "demo")
    assert parsed is not None
    assert parsed[0] == Version(version)
    assert match_tag({tag: COMMIT}, "demo", version).tag == tag


@given(prefixes, versions, st.sampled_from(["0", "1", "5", "rc1", ".dev0", "-1"]))
def test_a_longer_version_is_another_version(prefix: str, version: str, tail: str) -> None:
    tagged = version + tail
    assume(Version(tagged) != Version(version))  # "1.0.0" + "0" is 1.0.00: the same version
    match = match_tag({prefix + tagged: COMMIT}, "demo", version)
    assert match.tag is None
