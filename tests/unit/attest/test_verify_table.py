"""Every row of the consumer's table for `rebuilder verify` (issue: a verify one can rely
on). Each hostile bundle is built here and signed with a throwaway key that the verifier
is told to trust, so only the binding and decision rules stand between it and a PASSED."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import rebuilder.attest.verify as verify_module
from cli.main import main
from rebuilder.attest.bundle import bundle_path, dumps_bundle, sign_bundle, statements_for
from rebuilder.attest.checkpoint import NoteVerifier
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import Keyring, LocalKeySigner, generate_key, save_public_key
from rebuilder.attest.statements import (
    VSA_EXTENSION_KEY,
    BuildRun,
    GitSource,
    Verification,
    source_check_statement,
    statement_digest,
)
from rebuilder.attest.verify import (
    ExpectedFile,
    FileVerification,
    Weighed,
    accepted_stabilizers,
    decide,
    verify_bundle,
)
from rebuilder.compare.stabilizers import STABILIZERS, Stabilizer
from rebuilder.export import LogKey, export
from rebuilder.plan.strategy import Strategy
from rebuilder.source.attest import SOURCE_BUNDLE_NAME
from rebuilder.verdict import FileResult, StabilizerUse, Verdict
from tests.support.memlog import MemoryLog
from tests.unit.attest.conftest import FILENAME, PUBLISHED, make_result

PROJECT, VERSION = "Demo_Pkg", "1.0+local"
SDIST = "demo_pkg-1.0+local.tar.gz"
SDIST_SHA = hashlib.sha256(b"published sdist").hexdigest()
EXPECTED = ExpectedFile("demo-pkg", VERSION, FILENAME, PUBLISHED)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
Statements = list[dict[str, Any]]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at 80 columns when not a terminal
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp_path / "cache"))  # no key of our own


@pytest.fixture(scope="module")
def key() -> LocalKeySigner:
    return generate_key()


def genuine(
    strategy: Strategy,
    verdict: Verdict = Verdict.REPRODUCIBLE,
    at: datetime = T0,
    **changes: object,
) -> Statements:
    """Provenance + summary (or a failure statement) as `rebuilder check` makes them."""
    run = BuildRun("https://rebuilder.example/op", "inv-1", at - timedelta(minutes=1), at)
    return statements_for(
        make_result(verdict, **changes),
        strategy,
        run,
        Verification("https://rebuilder.example/op", at),
    )


def resign_summary(statements: Statements, change: Callable[[dict[str, Any]], None]) -> Statements:
    """The bundle with its summary edited (and signed again with the trusted key)."""
    edited = copy.deepcopy(statements)
    change(edited[-1]["predicate"])
    return edited


def write(root: Path, statements: Sequence[dict[str, Any]], key: LocalKeySigner,
          filename: str = FILENAME, version: str = VERSION) -> Path:  # fmt: skip
    path = root / bundle_path(PROJECT, version, filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_bundle(sign_bundle(statements, key)))
    return path


def pem(tmp_path: Path, key: LocalKeySigner) -> Path:
    path = tmp_path / "operator.pub"
    save_public_key(key.public_key, path)
    return path


def run_verify(tmp_path: Path, key: LocalKeySigner, target: str, *extra: str) -> int:
    argv = ["verify", target, "--attestations", str(tmp_path / "att")]
    return main([*argv, "--key", str(pem(tmp_path, key)), *extra])


def check(path: Path, key: LocalKeySigner, expected: ExpectedFile = EXPECTED) -> FileVerification:
    return verify_bundle(path, Keyring.of([key.public_key]), expected)


# --- row 1 and 5: binding -------------------------------------------------------------


def test_another_packages_genuine_bundle_at_this_path_is_refused(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_result(project="six", version="1.17.0", filename="six-1.17.0-py2.py3-none-any.whl")
    six_strategy = Strategy(**{**strategy.__dict__, "project": "six", "version": "1.17.0",
                               "target": other.filename})  # fmt: skip
    run = BuildRun("https://rebuilder.example/op", "inv", T0, T0)
    six = statements_for(other, six_strategy, run, Verification("https://rebuilder.example/op", T0))
    path = write(tmp_path / "att", six, key)  # six's bundle at demo-pkg's path
    with pytest.raises(VerificationError, match="not about"):
        check(path, key)
    code = run_verify(tmp_path, key, "demo-pkg==1.0+local", "--file", f"{FILENAME}={PUBLISHED}")
    out = capsys.readouterr().out
    assert code == 1
    assert "refused" in out and "six-1.17.0" in out
    assert "PASSED six" not in out


def test_a_resource_uri_naming_another_package_is_refused(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    def other_uri(p: dict[str, Any]) -> None:
        p["resourceUri"] = f"pkg:pypi/six@1.17.0?file_name={FILENAME}"

    path = write(tmp_path, resign_summary(genuine(strategy), other_uri), key)
    with pytest.raises(VerificationError, match="resourceUri"):
        check(path, key)
    # the twin: the genuine bundle passes
    assert check(write(tmp_path, genuine(strategy), key), key).passed


def test_file_mode_checks_the_resource_uri_too(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / FILENAME
    local.write_bytes(b"published wheel")  # PUBLISHED is its sha256
    assert hashlib.sha256(local.read_bytes()).hexdigest() == PUBLISHED

    def other_version(p: dict[str, Any]) -> None:
        p["resourceUri"] = f"pkg:pypi/demo-pkg@9.9?file_name={FILENAME}"

    write(tmp_path / "att", resign_summary(genuine(strategy), other_version), key)
    assert run_verify(tmp_path, key, str(local)) == 2  # refused: an error, never a verdict
    assert "resourceUri" in capsys.readouterr().err
    write(tmp_path / "att", genuine(strategy), key)
    assert run_verify(tmp_path, key, str(local)) == 0


def test_a_provenance_subject_other_than_rebuilt_sha256_is_refused(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    statements = genuine(strategy)
    statements[0]["subject"][0]["digest"]["sha256"] = "ab" * 32
    # keep the summary pointing at this (edited) provenance: only the digest link differs
    statements[1]["predicate"]["inputAttestations"][0]["digest"]["sha256"] = statement_digest(
        statements[0]
    )
    with pytest.raises(AttestationError, match="not the rebuilt"):
        check(write(tmp_path, statements, key), key)


def test_a_copied_bundle_for_another_version_is_refused(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    filename_99 = FILENAME.replace("1.0+local", "99.0")
    write(tmp_path / "att", genuine(strategy), key, filename=filename_99, version="99.0")
    # index unreachable: nothing to bind to, so nothing is verified (exit 2, not 0)
    unreachable = "http://127.0.0.1:9/simple/"
    code = run_verify(tmp_path, key, "demo-pkg==99.0", "--index-url", unreachable)
    assert code == 2
    # with the file named by --file: the copy is about 1.0+local's file, refused
    code = run_verify(tmp_path, key, "demo-pkg==99.0", "--file", f"{filename_99}={PUBLISHED}")
    assert code == 1
    assert "refused" in capsys.readouterr().out


def test_a_file_option_of_another_release_is_a_usage_error(
    tmp_path: Path, key: LocalKeySigner
) -> None:
    with pytest.raises(SystemExit) as exc:
        run_verify(tmp_path, key, "demo-pkg==2.0", "--file", f"{FILENAME}={PUBLISHED}")
    assert exc.value.code == 2


# --- rows 3 and 6: the decision -------------------------------------------------------


@pytest.mark.parametrize("order", ["passed-first", "failed-first"])
def test_a_newer_failed_summary_wins_in_either_order(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy, order: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    passed = genuine(strategy, at=T0)
    failed = genuine(strategy, Verdict.MISMATCH, at=T0 + timedelta(days=1))
    lines = passed + failed if order == "passed-first" else failed + passed
    checked = check(write(tmp_path / "att", lines, key), key)
    assert (checked.passed, checked.status, checked.verdict) == (False, "FAILED", "mismatch")
    assert len(checked.weighed) == 2
    local = tmp_path / FILENAME
    local.write_bytes(b"published wheel")
    assert run_verify(tmp_path, key, str(local)) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED")
    assert out.count("weighed: line") == 2


@pytest.mark.parametrize("order", ["passed-first", "failed-first"])
def test_a_newer_passed_summary_without_a_log_proof_does_not_supersede(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy, order: str
) -> None:
    failed = genuine(strategy, Verdict.MISMATCH, at=T0)
    passed = genuine(strategy, at=T0 + timedelta(days=1))
    lines = passed + failed if order == "passed-first" else failed + passed
    checked = check(write(tmp_path, lines, key), key)
    assert not checked.passed
    assert "without a log proof" in checked.decision


def test_a_newer_passed_summary_supersedes_when_the_log_shows_both(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = genuine(strategy, Verdict.MISMATCH, at=T0)
    passed = genuine(strategy, at=T0 + timedelta(days=1))
    log = MemoryLog("rebuilder.test/log")
    envelopes = sign_bundle(failed + passed, key)
    log.add_file(PROJECT, VERSION, FILENAME, [e.dumps() for e in envelopes])
    log.checkpoint(key, "rebuilder.test")
    vkey = NoteVerifier("rebuilder.test", key.public_key).vkey()
    export(log, tmp_path / "att", origin="rebuilder.test/log",
           key=LogKey(vkey, key.public_key.to_pem()))  # fmt: skip
    local = tmp_path / FILENAME
    local.write_bytes(b"published wheel")
    assert run_verify(tmp_path, key, str(local)) == 0
    out = capsys.readouterr().out
    assert "supersedes 1 earlier FAILED" in out
    # the older PASSED, newer FAILED twin in the same log stays FAILED
    log2 = MemoryLog("rebuilder.test/log")
    older_passed = genuine(strategy, at=T0)
    newer_failed = genuine(strategy, Verdict.MISMATCH, at=T0 + timedelta(days=1))
    log2.add_file(PROJECT, VERSION, FILENAME,
                  [e.dumps() for e in sign_bundle(older_passed + newer_failed, key)])  # fmt: skip
    log2.checkpoint(key, "rebuilder.test")
    export(log2, tmp_path / "att2", origin="rebuilder.test/log",
           key=LogKey(vkey, key.public_key.to_pem()))  # fmt: skip
    code = main(["verify", str(local), "--attestations", str(tmp_path / "att2"),
                 "--key", str(pem(tmp_path, key))])  # fmt: skip
    assert code == 1


def test_decide_is_order_independent_and_needs_the_log_to_supersede() -> None:
    old_fail = Weighed(1, "summary", False, "mismatch", T0, "a" * 64)
    new_pass = Weighed(2, "summary", True, "reproducible", T0 + timedelta(hours=1), "b" * 64)
    for lines in ([old_fail, new_pass], [new_pass, old_fail]):
        assert decide(lines, log_verified=True)[0] == "PASSED"
        assert decide(lines, log_verified=False)[0] == "FAILED"
    same_time = Weighed(3, "summary", True, "reproducible", T0, "c" * 64)
    assert decide([old_fail, same_time], log_verified=True)[0] == "FAILED"


def test_a_failure_statement_next_to_a_passed_summary_is_not_verified(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    failure = genuine(strategy, Verdict.FAILED, at=T0, upstream_sha256=PUBLISHED)
    for lines in (genuine(strategy) + failure, failure + genuine(strategy)):
        checked = check(write(tmp_path, lines, key), key)
        assert not checked.passed
        assert checked.status == "NOT VERIFIED"
        # both at the same time: their order is by digest, which any strategy field moves
        assert sorted(w.kind for w in checked.weighed) == ["failure", "summary"]


# --- row 4, and the other consistency rules ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("passed-mismatch", lambda p: (p[VSA_EXTENSION_KEY].update(verdict="mismatch"),
                                       p.update(verifiedLevels=["FAILED"]))),
        ("passed-levels-failed", lambda p: p.update(verifiedLevels=["FAILED"])),
        ("passed-with-differences", lambda p: p[VSA_EXTENSION_KEY].update(
            differences=[{"path": "x.py", "kind": "content"}])),
        ("failed-reproducible", lambda p: p.update(verificationResult="FAILED")),
        ("reproducible-with-stabilizers", lambda p: p[VSA_EXTENSION_KEY].update(
            stabilizers=[{"name": "zip-timestamps", "version": 1}])),
        ("rebuilt-sha-elsewhere", lambda p: p[VSA_EXTENSION_KEY].update(rebuiltSha256="cd" * 32)),
        ("input-digest-elsewhere", lambda p: p["inputAttestations"][0]["digest"].update(
            sha256="ef" * 32)),
    ],
)  # fmt: skip
def test_an_inconsistent_summary_is_refused(
    tmp_path: Path,
    key: LocalKeySigner,
    strategy: Strategy,
    name: str,
    change: Callable[[dict[str, Any]], None],
) -> None:
    with pytest.raises(AttestationError):
        check(write(tmp_path, resign_summary(genuine(strategy), change), key), key)


def test_a_failed_summary_must_be_a_mismatch_naming_differences(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    mismatch = genuine(strategy, Verdict.MISMATCH)
    assert check(write(tmp_path, mismatch, key), key).status == "FAILED"

    def no_differences(p: dict[str, Any]) -> None:
        p[VSA_EXTENSION_KEY]["differences"] = []

    with pytest.raises(AttestationError, match="no difference"):
        check(write(tmp_path, resign_summary(mismatch, no_differences), key), key)


# --- the mutants of _check_provenance ---------------------------------------------------


def test_a_summary_naming_no_provenance_is_refused(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    def none(p: dict[str, Any]) -> None:
        p["inputAttestations"] = []

    with pytest.raises(AttestationError, match="names no provenance"):
        check(write(tmp_path, resign_summary(genuine(strategy), none), key), key)


def test_a_bundle_with_its_provenance_line_removed_is_refused(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    summary_only = genuine(strategy)[1:]
    with pytest.raises(AttestationError, match="not in its bundle"):
        check(write(tmp_path, summary_only, key), key)


# --- row 7: what the verifier does not know ---------------------------------------------


def test_an_unknown_stabilizer_is_refused(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    unknown = (StabilizerUse("no-such-stabilizer", 99),)
    with pytest.raises(AttestationError, match="unknown stabilizer no-such-stabilizer@99"):
        check(write(tmp_path, genuine(strategy, Verdict.EQUIVALENT, stabilizers=unknown), key), key)
    known = (StabilizerUse("zip-timestamps", 1),)
    checked = check(
        write(tmp_path, genuine(strategy, Verdict.EQUIVALENT, stabilizers=known), key), key
    )
    assert (checked.passed, checked.stabilizers) == (True, ("zip-timestamps@1",))


def test_the_accepted_stabilizers_come_from_the_comparers_registry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    assert {str(s.use) for s in STABILIZERS} <= accepted_stabilizers()
    assert "zip-layout@1" in accepted_stabilizers()
    added = Stabilizer("metadata-field-order", 1, "added later", lambda a: a)
    monkeypatch.setattr(verify_module, "STABILIZERS", (*STABILIZERS, added))
    uses = (StabilizerUse("metadata-field-order", 1),)
    assert check(
        write(tmp_path, genuine(strategy, Verdict.EQUIVALENT, stabilizers=uses), key), key
    ).passed


def test_an_unknown_predicate_type_or_build_type_is_refused(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    extra = copy.deepcopy(genuine(strategy)[1])
    extra["predicateType"] = "https://example.invalid/anything/v1"
    with pytest.raises(AttestationError, match="unknown predicate type"):
        check(write(tmp_path, [*genuine(strategy), extra], key), key)
    statements = genuine(strategy)
    statements[0]["predicate"]["buildDefinition"]["buildType"] = "https://example.invalid/b"
    statements[1]["predicate"]["inputAttestations"][0]["digest"]["sha256"] = statement_digest(
        statements[0]
    )
    with pytest.raises(AttestationError, match="unknown build type"):
        check(write(tmp_path, statements, key), key)


# --- row 8: no key ----------------------------------------------------------------------


def test_no_key_is_a_usage_error_naming_where_keys_come_from(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "att", genuine(strategy), key)
    local = tmp_path / FILENAME
    local.write_bytes(b"published wheel")
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(local), "--attestations", str(tmp_path / "att")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--key" in err and "/api/v1/keys" in err
    assert "Traceback" not in err


# --- row 10: a genuine release by spec --------------------------------------------------


def _sdist_unsupported(at: datetime = T0) -> Statements:
    result = FileResult(PROJECT, VERSION, SDIST, Verdict.UNSUPPORTED, SDIST_SHA,
                        reason="source distribution: it is the input of the rebuild")  # fmt: skip
    return statements_for(result, None, None, Verification("https://rebuilder.example/op", at))


def _source_check(verdict: str) -> dict[str, Any]:
    return source_check_statement(
        project=PROJECT, version=VERSION, sdist_filename=SDIST, sdist_sha256=SDIST_SHA,
        verdict=verdict, git_source=GitSource("https://git.example/demo", "1" * 40, "v1.0"),
        details={}, verification=Verification("https://rebuilder.example/op", T0),
    )  # fmt: skip


def _release(tmp_path: Path, key: LocalKeySigner, strategy: Strategy) -> list[str]:
    write(tmp_path / "att", genuine(strategy), key)
    write(tmp_path / "att", _sdist_unsupported(), key, filename=SDIST)
    return ["--file", f"{FILENAME}={PUBLISHED}", "--file", f"{SDIST}={SDIST_SHA}"]


def test_a_genuine_release_passes_with_its_sdist_listed_as_not_rebuilt(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _release(tmp_path, key, strategy)
    assert run_verify(tmp_path, key, "demo-pkg==1.0+local", *files) == 0
    out = capsys.readouterr().out
    assert "NOT REBUILT demo_pkg-1.0+local.tar.gz" in out
    assert "PASSED Demo_Pkg" in out
    assert run_verify(tmp_path, key, "demo-pkg==1.0+local", *files, "--strict") == 1


def test_a_consistent_source_check_makes_the_sdist_passed_even_strict(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _release(tmp_path, key, strategy)
    folder = (tmp_path / "att" / bundle_path(PROJECT, VERSION, SDIST)).parent
    source = folder / "source.intoto.jsonl"
    source.write_text(dumps_bundle(sign_bundle([_source_check("consistent")], key)))
    assert run_verify(tmp_path, key, "demo-pkg==1.0+local", *files, "--strict") == 0
    assert "PASSED demo_pkg-1.0+local.tar.gz" in capsys.readouterr().out
    # the twin: an inconsistent source check leaves it not rebuilt, failing --strict
    source.write_text(dumps_bundle(sign_bundle([_source_check("inconsistent")], key)))
    assert run_verify(tmp_path, key, "demo-pkg==1.0+local", *files, "--strict") == 1
    assert run_verify(tmp_path, key, "demo-pkg==1.0+local", *files) == 0


def test_a_failed_wheel_fails_the_release(
    tmp_path: Path, key: LocalKeySigner, strategy: Strategy
) -> None:
    files = _release(tmp_path, key, strategy)
    write(tmp_path / "att", genuine(strategy, Verdict.MISMATCH), key)
    assert run_verify(tmp_path, key, "demo-pkg==1.0+local", *files) == 1
    # a wheel with no bundle at all is not verified either
    (tmp_path / "att" / bundle_path(PROJECT, VERSION, FILENAME)).unlink()
    assert run_verify(tmp_path, key, "demo-pkg==1.0+local", *files) == 1


def test_the_source_bundle_name_is_the_one_the_source_check_writes() -> None:
    assert verify_module.SOURCE_BUNDLE_NAME == SOURCE_BUNDLE_NAME
