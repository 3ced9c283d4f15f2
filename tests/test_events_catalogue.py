"""The event catalogue stays true: every type the code emits is documented, the AsyncAPI file
is the generated one, and its references resolve."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from activities.events.catalogue import EVENT_TYPES, asyncapi_document

ROOT = Path(__file__).resolve().parent.parent
# An outbox type written from Python (`type="a.b"`, `_Event("a.b"`, `_transaction_event("a.b"`)
# or by the payment trigger's SQL (`'payment.b'`).
_PYTHON_EMIT = re.compile(r'(?:type=|_Event\(|_transaction_event\()\s*"([a-z_]+\.[a-z_]+)"', re.S)
_SQL_EMIT = re.compile(r"'(payment\.(?!events')[a-z_]+)'")


def _emitted_types() -> set[str]:
    found: set[str] = set()
    for folder in ("activities", "api", "workflows"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(_PYTHON_EMIT.findall(path.read_text()))
    for path in (ROOT / "models" / "migrations" / "versions").glob("*.py"):
        found |= set(_SQL_EMIT.findall(path.read_text()))
    return found


def test_every_event_type_the_code_emits_is_in_the_catalogue() -> None:
    emitted = _emitted_types()
    assert {"balance.updated", "transaction.created", "account.opened", "payment.completed"} <= (
        emitted
    ), "the scan no longer finds the ledger's and the trigger's events"
    catalogued = {e.name for e in EVENT_TYPES}
    assert emitted - catalogued == set()


def test_the_committed_asyncapi_document_is_the_generated_one() -> None:
    committed = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    assert committed == asyncapi_document(), "run: vortex events asyncapi > docs/asyncapi.json"


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_reference_in_the_asyncapi_document_resolves() -> None:
    document = asyncapi_document()
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(document))
    assert len(refs) > 2 * len(EVENT_TYPES)
    for ref in refs:
        assert _resolve(document, ref) is not None, ref


def test_every_catalogued_type_is_described_in_the_events_page() -> None:
    page = (ROOT / "docs" / "events.md").read_text()
    missing = [e.name for e in EVENT_TYPES if f"`{e.name}`" not in page]
    assert missing == []
