"""The signed statements of a file the git-tag route took say what its verdict says:
rebuilt from git (the provenance names the commit, the summary records ``source: git``
with tag and commit), and ``rebuilder verify`` accepts them offline and shows the route."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rebuilder.attest.bundle import bundle_path, dumps_bundle, sign_bundle, statements_for
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import Keyring, LocalKeySigner, generate_key
from rebuilder.attest.ossrebuild import oss_rebuild_statements
from rebuilder.attest.statements import (
    VSA_EXTENSION_KEY,
    BuildRun,
    Verification,
    git_route,
    provenance_commit,
    statement_digest,
    validate_statement,
    verification_summary_statement,
)
from rebuilder.attest.verify import ExpectedFile, verify_bundle
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import FileResult, Verdict
from tests.unit.attest.conftest import FILENAME, PUBLISHED, make_result

COMMIT = "c0ffee" + "0" * 34
OTHER = "badbad" + "0" * 34
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUN = BuildRun("https://rebuilder.example/op", "inv-1", T0 - timedelta(minutes=1), T0)
CHECKED = Verification("https://rebuilder.example/op", T0)
EXPECTED = ExpectedFile("demo-pkg", "1.0+local", FILENAME, PUBLISHED)


def opinion(route: str = "git", commit: str = COMMIT) -> dict[str, Any]:
    return {
        "source": "git",
        "verdict": "reproducible",
        "repository": "https://forge.invalid/demo.git",
        "tag": "v1.0",
        "commit": commit,
        "route": route,
        "sdist_lacks": ["demo/extra.py"],
        "built_from": "tree",
    }


def routed() -> FileResult:
    """A mismatch of the sdist route that the git-tag route made reproducible."""
    return make_result(
        Verdict.REPRODUCIBLE,
        rebuilt_sha256=PUBLISHED,
        reason="built from git tag v1.0 @ c0ffee000000: the published wheel holds files ...",
        second_opinion=opinion(),
    )


@pytest.fixture(scope="module")
def key() -> LocalKeySigner:
    return generate_key()


def test_the_route_is_read_from_the_second_opinion() -> None:
    found = git_route(routed())
    assert found is not None
    source, built_from = found
    assert (source.repository, source.commit, source.tag, built_from) == (
        "https://forge.invalid/demo.git", COMMIT, "v1.0", "tree",
    )  # fmt: skip
    assert git_route(make_result(second_opinion=opinion(route="sdist"))) is None
    assert git_route(make_result()) is None
    with pytest.raises(AttestationError, match="no repository"):
        git_route(make_result(second_opinion={**opinion(), "repository": None}))


def test_a_routed_file_is_attested_as_rebuilt_from_git(strategy: Strategy) -> None:
    provenance, summary = statements_for(routed(), strategy, RUN, CHECKED)
    assert provenance_commit(provenance["predicate"]) == COMMIT
    deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
    roles = [d["annotations"]["role"] for d in deps]
    assert roles[:2] == ["source", "source-commit"]  # the sdist whose strategy it followed
    assert deps[1]["uri"] == "git+https://forge.invalid/demo.git@refs/tags/v1.0"
    predicate = summary["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    extension = predicate[VSA_EXTENSION_KEY]
    assert extension["verdict"] == "reproducible"
    assert extension["source"] == "git"
    assert extension["git"]["digest"] == {"gitCommit": COMMIT}
    assert extension["git"]["annotations"]["tag"] == "v1.0"
    assert extension["git"]["builtFrom"] == "tree"
    assert extension["git"]["sdistLacks"] == ["demo/extra.py"]


def test_a_file_of_the_sdist_route_says_so(strategy: Strategy) -> None:
    provenance, summary = statements_for(make_result(), strategy, RUN, CHECKED)
    assert provenance_commit(provenance["predicate"]) is None
    assert summary["predicate"][VSA_EXTENSION_KEY]["source"] == "sdist"
    assert "git" not in summary["predicate"][VSA_EXTENSION_KEY]


def test_a_summary_of_the_git_route_needs_a_provenance_naming_the_commit(
    strategy: Strategy,
) -> None:
    provenance, _ = statements_for(make_result(rebuilt_sha256=PUBLISHED), strategy, RUN, CHECKED)
    with pytest.raises(AttestationError, match="does not name the git commit"):
        verification_summary_statement(routed(), CHECKED, provenance)


def test_the_extension_must_name_sdist_or_git(strategy: Strategy) -> None:
    _, summary = statements_for(routed(), strategy, RUN, CHECKED)
    for bad in ({"source": "ftp"}, {"source": "git", "git": {"uri": "git+x"}}):
        edited = copy.deepcopy(summary)
        edited["predicate"][VSA_EXTENSION_KEY].update(bad)
        with pytest.raises(AttestationError):
            validate_statement(edited)


def _write(root: Path, statements: list[dict[str, Any]], key: LocalKeySigner) -> Path:
    path = root / bundle_path("Demo_Pkg", "1.0+local", FILENAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_bundle(sign_bundle(statements, key)))
    return path


def test_verify_accepts_the_git_route_offline_and_shows_it(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    path = _write(tmp_path, statements_for(routed(), strategy, RUN, CHECKED), key)
    checked = verify_bundle(path, Keyring.of([key.public_key]), EXPECTED)
    assert checked.passed and checked.status == "PASSED"
    assert checked.verdict == "reproducible"
    assert checked.route == "rebuilt from git tag v1.0 @ c0ffee000000 (built from the tree)"
    plain = _write(tmp_path / "plain", statements_for(
        make_result(rebuilt_sha256=PUBLISHED), strategy, RUN, CHECKED), key)  # fmt: skip
    assert verify_bundle(plain, Keyring.of([key.public_key]), EXPECTED).route is None


def test_verify_refuses_a_summary_whose_commit_its_provenance_does_not_name(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    provenance, summary = statements_for(routed(), strategy, RUN, CHECKED)
    summary["predicate"][VSA_EXTENSION_KEY]["git"]["digest"]["gitCommit"] = OTHER
    path = _write(tmp_path, [provenance, summary], key)
    with pytest.raises(AttestationError, match="does not name that commit"):
        verify_bundle(path, Keyring.of([key.public_key]), EXPECTED)
    # the twin: a provenance built from that other commit, named by the summary, passes
    other = make_result(rebuilt_sha256=PUBLISHED, reason="x", second_opinion=opinion(commit=OTHER))
    provenance, summary = statements_for(other, strategy, RUN, CHECKED)
    assert summary["predicate"]["inputAttestations"][0]["digest"]["sha256"] == statement_digest(
        provenance
    )
    path = _write(tmp_path / "twin", [provenance, summary], key)
    assert verify_bundle(path, Keyring.of([key.public_key]), EXPECTED).passed


def test_oss_rebuild_provenance_names_the_commit_too(strategy: Strategy) -> None:
    rebuild, _ = oss_rebuild_statements(routed(), strategy, RUN, None, "ab" * 32)
    deps = rebuild["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert any(d["annotations"]["role"] == "source-commit" for d in deps)
