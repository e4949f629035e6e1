from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from rebuilder.attest.dsse import (
    PAYLOAD_TYPE,
    Envelope,
    Signature,
    open_statement,
    pae,
    parse_envelope,
    sign_envelope,
    sign_statement,
    verify_envelope,
)
from rebuilder.attest.errors import AttestationError, VerificationError
from rebuilder.attest.keys import Keyring, LocalKeySigner

PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1"}'


def test_pae_matches_the_dsse_spec_example() -> None:
    # The worked example of the DSSE v1 protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "
    # Lengths are byte lengths, not character counts.
    assert pae("t\u00e9", b"x").startswith(b"DSSEv1 3 t\xc3\xa9 1 x")


@pytest.mark.parametrize("key_name", ["ed_key", "ec_key"])
def test_round_trip_through_json(key_name: str, request: pytest.FixtureRequest) -> None:
    key: LocalKeySigner = request.getfixturevalue(key_name)
    envelope = sign_envelope(PAYLOAD, key)
    parsed = parse_envelope(envelope.dumps())
    assert parsed == envelope
    verified = verify_envelope(parsed, Keyring((key.public_key,)))
    assert verified.payload == PAYLOAD
    assert verified.key_ids == (key.key_id,)


@pytest.mark.parametrize("key_name", ["ed_key", "ec_key"])
def test_our_envelopes_verify_with_securesystemslib(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    """Independent check: securesystemslib's own PAE and Envelope.verify, not our code path."""
    key: LocalKeySigner = request.getfixturevalue(key_name)
    envelope = sign_envelope(PAYLOAD, key)
    theirs = SslibEnvelope.from_dict(json.loads(envelope.dumps()))
    assert theirs.payload == PAYLOAD
    assert theirs.pae() == pae(PAYLOAD_TYPE, PAYLOAD)
    accepted = theirs.verify([key.public_key.to_sslib()], 1)
    assert list(accepted) == [key.key_id]
    tampered = json.loads(envelope.dumps())
    tampered["payload"] = base64.b64encode(PAYLOAD + b" ").decode()
    with pytest.raises(SslibVerificationError):
        SslibEnvelope.from_dict(tampered).verify([key.public_key.to_sslib()], 1)


def test_envelopes_signed_by_securesystemslib_verify_with_ours(ed_key: LocalKeySigner) -> None:
    theirs = SslibEnvelope(PAYLOAD, PAYLOAD_TYPE, {})
    private = load_pem_private_key(ed_key.private_pem(), password=None)
    sslib_signer = CryptoSigner(private, ed_key.public_key.to_sslib())
    signature = theirs.sign(sslib_signer)
    assert signature.keyid == ed_key.key_id
    ours = parse_envelope(theirs.to_dict())
    assert verify_envelope(ours, Keyring((ed_key.public_key,))).payload == PAYLOAD


def _mutate(envelope: Envelope, field: str) -> dict[str, Any]:
    data = envelope.to_json()
    if field == "payload":
        raw = bytearray(envelope.payload)
        raw[5] ^= 0x01
        data["payload"] = base64.b64encode(bytes(raw)).decode()
    elif field == "signature":
        raw = bytearray(envelope.signatures[0].sig)
        raw[-1] ^= 0x01
        data["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    return data


@pytest.mark.parametrize("field", ["payload", "signature"])
@pytest.mark.parametrize("key_name", ["ed_key", "ec_key"])
def test_a_flipped_bit_fails(field: str, key_name: str, request: pytest.FixtureRequest) -> None:
    key: LocalKeySigner = request.getfixturevalue(key_name)
    envelope = sign_envelope(PAYLOAD, key)
    broken = parse_envelope(_mutate(envelope, field))
    with pytest.raises(VerificationError, match="no signature verifies"):
        verify_envelope(broken, Keyring((key.public_key,)))


def test_a_changed_payload_type_fails_even_when_expected(ed_key: LocalKeySigner) -> None:
    envelope = sign_envelope(PAYLOAD, ed_key)
    changed = replace(envelope, payload_type="application/vnd.in-toto+jsoN")
    with pytest.raises(VerificationError, match="payload type"):
        verify_envelope(changed, Keyring((ed_key.public_key,)))
    # Even a verifier expecting the new type must reject: PAE binds the type.
    with pytest.raises(VerificationError, match="no signature verifies"):
        verify_envelope(changed, Keyring((ed_key.public_key,)), payload_type=changed.payload_type)


def test_a_wrong_key_fails_and_a_lying_keyid_does_not_help(
    ed_key: LocalKeySigner, other_key: LocalKeySigner
) -> None:
    envelope = sign_envelope(PAYLOAD, ed_key)
    with pytest.raises(VerificationError):
        verify_envelope(envelope, Keyring((other_key.public_key,)))
    relabeled = replace(
        envelope, signatures=(Signature(other_key.key_id, envelope.signatures[0].sig),)
    )
    with pytest.raises(VerificationError):
        verify_envelope(relabeled, Keyring((other_key.public_key,)))


def test_rotation_old_key_still_trusted(ed_key: LocalKeySigner, other_key: LocalKeySigner) -> None:
    old_envelope = sign_envelope(PAYLOAD, ed_key)
    ring = Keyring((other_key.public_key, ed_key.public_key))
    assert verify_envelope(old_envelope, ring).key_ids == (ed_key.key_id,)
    # A missing key id is only a hint: the signature is still found by trying every key.
    anonymous = replace(old_envelope, signatures=(Signature("", old_envelope.signatures[0].sig),))
    assert verify_envelope(anonymous, ring).key_ids == (ed_key.key_id,)


def test_one_good_signature_among_bad_ones_is_enough(
    ed_key: LocalKeySigner, other_key: LocalKeySigner, ec_key: LocalKeySigner
) -> None:
    envelope = sign_envelope(PAYLOAD, [other_key, ed_key])
    assert len(envelope.signatures) == 2
    assert verify_envelope(envelope, Keyring((ed_key.public_key, ec_key.public_key))).key_ids == (
        ed_key.key_id,
    )


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[]",
        '{"payload": "", "payloadType": "t"}',
        '{"payload": 1, "payloadType": "t", "signatures": [{"sig": "AAAA"}]}',
        '{"payload": "!!", "payloadType": "t", "signatures": [{"sig": "AAAA"}]}',
        '{"payload": "", "payloadType": "", "signatures": [{"sig": "AAAA"}]}',
        '{"payload": "", "payloadType": "t", "signatures": []}',
        '{"payload": "", "payloadType": "t", "signatures": [{"sig": ""}]}',
        '{"payload": "", "payloadType": "t", "signatures": [{"keyid": 3, "sig": "AAAA"}]}',
        '{"payload": "", "payloadType": "t", "signatures": ["AAAA"]}',
    ],
)
def test_malformed_envelopes_are_rejected(bad: str) -> None:
    with pytest.raises(AttestationError):
        parse_envelope(bad)


def test_url_safe_base64_is_accepted(ed_key: LocalKeySigner) -> None:
    envelope = sign_envelope(b"\xfb\xff\xfe" * 10, ed_key, payload_type="x")
    data = envelope.to_json()
    data["payload"] = base64.urlsafe_b64encode(envelope.payload).decode().rstrip("=")
    assert parse_envelope(data).payload == envelope.payload


def test_open_statement_parses_only_after_verifying(
    ed_key: LocalKeySigner, other_key: LocalKeySigner
) -> None:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "f.whl", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://example.com/custom/v1",
        "predicate": {},
    }
    envelope = sign_statement(statement, ed_key)
    opened, verified = open_statement(envelope, Keyring((ed_key.public_key,)))
    assert opened.subjects[0].name == "f.whl"
    assert verified.key_ids == (ed_key.key_id,)
    with pytest.raises(VerificationError):
        open_statement(envelope, Keyring((other_key.public_key,)))
    not_a_statement = sign_envelope(b"[1, 2]", ed_key)
    with pytest.raises(AttestationError):
        open_statement(not_a_statement, Keyring((ed_key.public_key,)))
