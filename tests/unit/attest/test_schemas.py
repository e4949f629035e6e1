"""Our statements against the in-toto attestation framework's own definitions.

An independent check, not our validator: the ``in-toto-attestation`` package's protobuf
messages for Statement v1, SLSA Provenance v1 and the Verification Summary v1 parse our
JSON strictly (an unknown or mistyped field fails), and its Statement and
ResourceDescriptor wrappers run their own validation.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1 import resource_descriptor_pb2, statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

from rebuilder.attest.statements import (
    VSA_EXTENSION_KEY,
    BuildRun,
    Verification,
    failure_statement,
    provenance_statement,
    verification_summary_statement,
)
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import Verdict

from .conftest import make_result


def _statement(data: dict[str, Any]) -> None:
    proto = json_format.ParseDict(data, statement_pb2.Statement())  # type: ignore[attr-defined]
    Statement.copy_from_pb(proto).validate()


def test_provenance_is_a_valid_statement_with_a_slsa_v1_predicate(
    strategy: Strategy, run: BuildRun
) -> None:
    statement = provenance_statement(make_result(), strategy, run)
    _statement(statement)
    json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())  # type: ignore[attr-defined]


@pytest.mark.parametrize("verdict", [Verdict.REPRODUCIBLE, Verdict.EQUIVALENT, Verdict.MISMATCH])
def test_vsa_is_a_valid_statement_with_a_vsa_v1_predicate(
    strategy: Strategy, run: BuildRun, verification: Verification, verdict: Verdict
) -> None:
    result = make_result(verdict)
    vsa = verification_summary_statement(
        result, verification, provenance_statement(result, strategy, run)
    )
    _statement(vsa)
    # Three fields of SLSA VSA 1.0 differ in the framework's proto (in-toto-attestation
    # 0.9): verifier.version (a map of component versions) is missing, inputAttestations
    # hold only uri and digest where the spec has full ResourceDescriptors, and
    # verifiedLevels is one string where the spec has an array. Those are checked here
    # against the spec (the descriptors by the framework's own ResourceDescriptor
    # validator), and the rest is parsed strictly.
    data = copy.deepcopy(vsa["predicate"])
    version = data["verifier"].pop("version")
    assert isinstance(version, dict) and all(isinstance(v, str) for v in version.values())
    levels = data.pop("verifiedLevels")
    # SlsaResult: SLSA_<TRACK>_LEVEL_<N>, FAILED, or a custom value not starting with SLSA_
    assert levels and all(isinstance(v, str) and v for v in levels)
    assert all(re.fullmatch(r"SLSA_[A-Z]+_LEVEL_[0-4]", v) for v in levels if v.startswith("SLSA_"))
    # SLSA extension fields: property names that are URIs (our verdict, stabilizers and
    # differences); consumers ignore what they do not know.
    extensions = [k for k in data if "://" in k]
    assert extensions == [VSA_EXTENSION_KEY]
    for key in extensions:
        del data[key]
    inputs = data.pop("inputAttestations")
    assert inputs
    for item in inputs:
        descriptor = json_format.ParseDict(item, resource_descriptor_pb2.ResourceDescriptor())  # type: ignore[attr-defined]
        ResourceDescriptor.copy_from_pb(descriptor).validate()
        assert descriptor.digest["sha256"]
    predicate = json_format.ParseDict(data, vsa_pb2.VerificationSummary())  # type: ignore[attr-defined]
    expected = "FAILED" if verdict is Verdict.MISMATCH else "PASSED"
    assert predicate.verification_result == expected


@pytest.mark.parametrize("verdict", [Verdict.FAILED, Verdict.UNSUPPORTED])
def test_failure_statements_are_valid_statements(
    strategy: Strategy, verification: Verification, verdict: Verdict
) -> None:
    _statement(failure_statement(make_result(verdict), verification, strategy))


def test_a_malformed_statement_is_refused_by_the_framework(
    strategy: Strategy, run: BuildRun
) -> None:
    # The check has teeth: a mistyped field fails the framework's own parser.
    statement = provenance_statement(make_result(), strategy, run)
    broken = copy.deepcopy(statement["predicate"])
    broken["buildDefinition"]["buildType"] = 42
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(broken, provenance_pb2.Provenance())  # type: ignore[attr-defined]
    extra = copy.deepcopy(statement["predicate"])
    extra["runDetails"]["surprise"] = True
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(extra, provenance_pb2.Provenance())  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="digest"):
        _statement({**statement, "subject": [{"name": "x.whl", "digest": {}}]})
