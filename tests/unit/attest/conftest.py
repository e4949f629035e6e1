from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from rebuilder.attest.keys import KeyAlgorithm, LocalKeySigner, generate_key
from rebuilder.attest.statements import BuildRun, Verification
from rebuilder.errors import FailureReason
from rebuilder.index.model import BuildRequirement, PinnedFile
from rebuilder.plan.strategy import ArchiveInputs, BackendPin, Strategy
from rebuilder.verdict import Difference, DifferenceKind, FileResult, StabilizerUse, Verdict

PUBLISHED = hashlib.sha256(b"published wheel").hexdigest()
REBUILT = hashlib.sha256(b"rebuilt wheel").hexdigest()
FILENAME = "Demo_Pkg-1.0+local-py3-none-any.whl"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def strategy() -> Strategy:
    return Strategy(
        project="Demo_Pkg",
        version="1.0+local",
        target=FILENAME,
        distribution="wheel",
        source=PinnedFile(
            "demo_pkg-1.0+local.tar.gz", "https://files.example/demo.tar.gz", sha("s")
        ),
        backend=BackendPin("setuptools (75.0.0)", "setuptools", "75.0.0"),
        requirements=(
            BuildRequirement(
                "setuptools",
                "75.0.0",
                PinnedFile(
                    "setuptools-75.0.0-py3-none-any.whl", "https://files.example/st.whl", sha("st")
                ),
            ),
            BuildRequirement(
                "wheel",
                "0.44.0",
                PinnedFile(
                    "wheel-0.44.0-py3-none-any.whl", "https://files.example/w.whl", sha("w")
                ),
            ),
        ),
        archive=ArchiveInputs(source_date_epoch=1700000000, build_clock=None),
        image="rebuilder/py311@sha256:" + sha("img"),
        image_digest="sha256:" + sha("img"),
        python_version="3.11.9",
        resolved_as_of="2024-01-01T00:00:00Z",
    )


def make_result(verdict: Verdict = Verdict.REPRODUCIBLE, **changes: object) -> FileResult:
    fields: dict[str, object] = {
        "project": "Demo_Pkg",
        "version": "1.0+local",
        "filename": FILENAME,
        "verdict": verdict,
        "upstream_sha256": PUBLISHED,
        "rebuilt_sha256": REBUILT,
    }
    if verdict is Verdict.EQUIVALENT:
        fields["stabilizers"] = (StabilizerUse("zip-timestamps", 2),)
    if verdict is Verdict.MISMATCH:
        fields["differences"] = (
            Difference("demo/x.py", DifferenceKind.CONTENT),
            Difference("demo/evil.py", DifferenceKind.ADDED),
        )
    if verdict is Verdict.FAILED:
        fields["rebuilt_sha256"] = None
        fields["reason"] = "backend crashed"
        fields["reason_class"] = FailureReason.BUILD
    fields.update(changes)
    return FileResult(**fields)  # type: ignore[arg-type]


@pytest.fixture
def run() -> BuildRun:
    return BuildRun(
        builder_id="https://rebuilder.example/operator/1",
        invocation_id="inv-42",
        started_on=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        finished_on=datetime(2025, 1, 2, 3, 9, 5, 123000, tzinfo=UTC),
    )


@pytest.fixture
def verification() -> Verification:
    return Verification(
        "https://rebuilder.example/operator/1", datetime(2025, 1, 2, 3, 10, tzinfo=UTC)
    )


@pytest.fixture(scope="session")
def ed_key() -> LocalKeySigner:
    return generate_key(KeyAlgorithm.ED25519)


@pytest.fixture(scope="session")
def ec_key() -> LocalKeySigner:
    return generate_key(KeyAlgorithm.ECDSA_P256)


@pytest.fixture(scope="session")
def other_key() -> LocalKeySigner:
    return generate_key()
