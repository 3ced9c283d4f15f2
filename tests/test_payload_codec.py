"""The AES-GCM payload codec on its own: round trip, rotation, old clear payloads, bad input."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload

from core.settings import Settings
from models.payments.payloads import TransferInput
from temporal.client import data_converter
from temporal.codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyConfigError,
    PayloadKeys,
    UnknownPayloadKey,
)
from tests.conftest import TEST_SECRET

OLD_SECRET = "an-older-master-secret-0123456789abcdef"


def _codec(active: str = "v1", old: str = "", secret: str = TEST_SECRET) -> EncryptionCodec:
    return EncryptionCodec(PayloadKeys.parse(secret, active, old))


def _clear(text: bytes = b'{"amount_minor":2550,"description":"dinner"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text)


async def test_a_payload_round_trips_and_its_ciphertext_holds_no_clear_text() -> None:
    codec = _codec()
    original = _clear()

    [sealed] = await codec.encode([original])
    [opened] = await codec.decode([sealed])

    assert opened == original
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"v1"
    assert b"2550" not in sealed.SerializeToString()
    assert b"dinner" not in sealed.SerializeToString()
    assert b"json/plain" not in sealed.SerializeToString()  # the inner metadata is sealed too


async def test_the_same_payload_encrypts_differently_each_time() -> None:
    codec = _codec()

    first, second = await codec.encode([_clear(), _clear()])

    assert first.data[:12] != second.data[:12]  # fresh nonce per payload
    assert first.data != second.data


async def test_clear_payloads_from_old_histories_pass_through_decoding() -> None:
    old = [_clear(), Payload(metadata={"encoding": b"binary/null"})]

    assert await _codec().decode(old) == old


async def test_after_rotation_payloads_under_the_previous_key_id_still_decode() -> None:
    [sealed] = await _codec("v1").encode([_clear()])
    rotated = _codec("v2", old="v1")

    [opened] = await rotated.decode([sealed])
    [fresh] = await rotated.encode([_clear()])

    assert opened == _clear()
    assert fresh.metadata[KEY_ID_METADATA] == b"v2"


async def test_after_a_new_master_secret_payloads_under_the_old_secret_still_decode() -> None:
    [sealed] = await _codec("v1", secret=OLD_SECRET).encode([_clear()])
    rotated = _codec("v2", old=f"v1={OLD_SECRET}")

    assert await rotated.decode([sealed]) == [_clear()]


async def test_an_unknown_key_id_is_a_clear_error_naming_the_id() -> None:
    [sealed] = await _codec("v9").encode([_clear()])

    with pytest.raises(UnknownPayloadKey, match=r"key id 'v9'.*VORTEX_PAYLOAD_OLD_KEYS"):
        await _codec("v1").decode([sealed])


async def test_a_relabelled_or_altered_payload_is_refused() -> None:
    codec = _codec("v2", old="v1")
    [sealed] = await codec.encode([_clear()])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_METADATA] = b"v1"
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])

    for bad in (relabelled, flipped):
        with pytest.raises(PayloadDecryptionError, match="failed authentication"):
            await codec.decode([bad])


async def test_the_same_key_id_under_another_secret_does_not_decrypt() -> None:
    [sealed] = await _codec("v1", secret=OLD_SECRET).encode([_clear()])

    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await _codec("v1").decode([sealed])


@pytest.mark.parametrize(
    ("active", "old"),
    [("", ""), ("v 1", ""), ("v1", "v1"), ("v1", "v0=s3cr3t-but-short"), ("v1", "bad id")],
)
def test_malformed_key_settings_are_refused_without_echoing_secrets(active: str, old: str) -> None:
    with pytest.raises(PayloadKeyConfigError) as caught:
        PayloadKeys.parse(TEST_SECRET, active, old)

    assert "s3cr3t" not in str(caught.value)


async def test_the_data_converter_encrypts_workflow_inputs_and_reads_them_back() -> None:
    settings = Settings(_env_file=None, environment="test", secret_key=SecretStr(TEST_SECRET))
    converter = data_converter(settings)
    value = _transfer_input()

    [payload] = await converter.encode([value])
    [back] = await converter.decode([payload], [TransferInput])

    assert payload.metadata["encoding"] == ENCODING
    assert back == value


async def test_with_encryption_off_new_payloads_are_clear_but_encrypted_ones_still_decode() -> None:
    on = Settings(_env_file=None, environment="test", secret_key=SecretStr(TEST_SECRET))
    off = on.model_copy(update={"payload_encryption": False})
    [sealed] = await data_converter(on).encode([_transfer_input()])

    [clear] = await data_converter(off).encode([_transfer_input()])
    [back] = await data_converter(off).decode([sealed], [TransferInput])

    assert clear.metadata["encoding"] == b"json/plain"
    assert back == _transfer_input()


def _transfer_input() -> TransferInput:
    return TransferInput(
        payment_id=uuid.UUID(int=1),
        user_id=uuid.UUID(int=2),
        from_account_id=uuid.UUID(int=3),
        to_account_id=uuid.UUID(int=4),
        amount=2550,
        currency="EUR",
        description="dinner",
    )
