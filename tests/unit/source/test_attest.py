from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rebuilder.attest.bundle import read_bundle
from rebuilder.attest.dsse import open_statement
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import KeyAlgorithm, Keyring, generate_key
from rebuilder.attest.statements import (
    PROVENANCE_PREDICATE_TYPE,
    SOURCE_CHECK_PREDICATE_TYPE,
    validate_statement,
)
from rebuilder.evidence import Evidence
from rebuilder.index.model import PinnedFile
from rebuilder.plan.strategy import ArchiveInputs, BackendPin, Strategy
from rebuilder.source.attest import source_statements, write_source_bundle
from rebuilder.source.result import (
    DifferingFile,
    DiffKind,
    ExplainedFile,
    GitBuild,
    SourceResult,
    SourceVerdict,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
COMMIT = "c0ffee" + "0" * 34
WHEEL = "demo-1.0-py3-none-any.whl"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _result(tmp: Path, **changes: object) -> SourceResult:
    evidence = tmp / "source"
    base = SourceResult(
        "demo",
        "1.0",
        SourceVerdict.CONSISTENT,
        sdist="demo-1.0.tar.gz",
        sdist_sha256=_sha("sdist"),
        repository="https://git.example/demo",
        tag="v1.0",
        commit=COMMIT,
        explained=(ExplainedFile("PKG-INFO", "pkg-info@1"),),
        from_git=(GitBuild(WHEEL, "reproducible", _sha("wheel")),),
        evidence=str(evidence),
    )
    strategy = Strategy(
        project="demo",
        version="1.0",
        target=WHEEL,
        distribution="wheel",
        source=PinnedFile("demo-1.0.tar.gz", "https://files.example/demo.tar.gz", _sha("sdist")),
        backend=BackendPin("setuptools (75.0.0)", "setuptools", "75.0.0"),
        requirements=(),
        archive=ArchiveInputs(source_date_epoch=1700000000, build_clock=None),
        image="img@sha256:" + _sha("img"),
        image_digest="sha256:" + _sha("img"),
        python_version="3.11",
        resolved_as_of=None,
    )
    (evidence / "from-git").mkdir(parents=True)
    Evidence(evidence / "from-git").write_strategy(strategy)
    return SourceResult(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_source_check_and_from_git_provenance_name_the_commit(tmp_path: Path) -> None:
    check, provenance = source_statements(_result(tmp_path), "https://builder.example", NOW)
    assert check["predicateType"] == SOURCE_CHECK_PREDICATE_TYPE
    assert check["subject"][0]["digest"] == {"sha256": _sha("sdist")}
    assert check["predicate"]["verdict"] == "consistent"
    assert check["predicate"]["source"]["digest"] == {"gitCommit": COMMIT}
    assert check["predicate"]["source"]["uri"] == "git+https://git.example/demo@refs/tags/v1.0"
    assert provenance["predicateType"] == PROVENANCE_PREDICATE_TYPE
    assert provenance["subject"][0]["digest"] == {"sha256": _sha("wheel")}
    deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
    roles = [d["annotations"]["role"] for d in deps]
    assert roles[:3] == ["source", "source-commit", "build-image"]
    assert deps[1]["digest"] == {"gitCommit": COMMIT}


def test_inconsistent_and_no_source_statements(tmp_path: Path) -> None:
    bad = _result(
        tmp_path,
        verdict=SourceVerdict.INCONSISTENT,
        differing=(DifferingFile("evil.py", DiffKind.SDIST_ONLY),),
        from_git=(),
    )
    (check,) = source_statements(bad, "https://builder.example", NOW)
    assert check["predicate"]["details"]["differing"] == [{"path": "evil.py", "kind": "sdist-only"}]
    none = _result(tmp_path / "2", verdict=SourceVerdict.NO_SOURCE, commit=None, from_git=())
    (check,) = source_statements(none, "https://builder.example", NOW)
    assert check["predicate"]["source"] is None
    check["predicate"]["verdict"] = "consistent"  # a verdict without a commit is refused
    with pytest.raises(AttestationError, match="names the commit"):
        validate_statement(check)
    check["predicate"]["verdict"] = "fine"
    with pytest.raises(AttestationError, match="must be consistent"):
        validate_statement(check)


def test_the_source_bundle_is_signed_and_verifies(tmp_path: Path) -> None:
    signer = generate_key(KeyAlgorithm.ED25519)
    path = write_source_bundle(tmp_path / "out", _result(tmp_path), signer, "https://b", NOW)
    assert path.name == "source.intoto.jsonl"
    assert path.parent.name == "demo-1.0.tar.gz"
    envelopes = read_bundle(path)
    keyring = Keyring([signer.public_key])
    statements = [open_statement(e, keyring)[0] for e in envelopes]
    assert [s.predicate_type for s in statements] == [
        SOURCE_CHECK_PREDICATE_TYPE,
        PROVENANCE_PREDICATE_TYPE,
    ]
