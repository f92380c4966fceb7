"""The sequencer's entry template writes exactly the bytes the entry's definition canonicalizes to.

``EntryTemplate.fill`` joins canonical pieces made before the log's lock; ``build_entry`` is the
entry as a JSON value. They must agree byte for byte, for any header a writer can cause (any
Unicode, keys that sort differently by UTF-16 and by code point, floats, nesting) and for any
seq, prev, time and back-link the sequencer can give.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.core.canonical import MAX_SAFE_INTEGER, canonicalize
from ledger.core.entry import EventHeader, build_entry, entry_template, format_time

TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    TEXT,
    st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
HEADERS = st.builds(
    EventHeader,
    event_id=TEXT,
    source=TEXT,
    type=TEXT,
    time=TEXT,
    conversation_id=TEXT,
    actor=st.fixed_dictionaries({"kind": st.none() | TEXT, "id": st.none() | TEXT}),
    outcome=TEXT,
    resource=st.none() | st.dictionaries(TEXT, JSON, max_size=4),
)
WRITERS = st.fixed_dictionaries({"credential": st.integers(0, 2**31), "role": TEXT, "label": TEXT})
MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)


def both(
    *,
    origin: str,
    header: EventHeader,
    writer: dict[str, Any],
    commitment: bytes,
    seq: int,
    prev: bytes,
    moment: datetime,
    conversation_prev: int | None,
    writer_signature: str | None = None,
) -> tuple[bytes, bytes]:
    """(what the sequencer writes, what the definition canonicalizes to)."""
    received_at = format_time(moment)
    filled = entry_template(
        origin=origin,
        header=header,
        writer=canonicalize(writer),
        commitment=commitment,
        writer_signature=writer_signature,
    ).fill(
        seq=seq,
        prev=prev,
        received_at=received_at.encode("ascii"),
        conversation_prev=conversation_prev,
    )
    value = build_entry(
        origin=origin,
        seq=seq,
        prev=prev,
        received_at=received_at,
        header=header,
        writer=writer,
        commitment=commitment,
        conversation_prev=conversation_prev,
        writer_signature=writer_signature,
    )
    return filled, rfc8785.dumps(value)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    origin=TEXT,
    header=HEADERS,
    writer=WRITERS,
    commitment=st.binary(min_size=32, max_size=32),
    prev=st.binary(min_size=32, max_size=32),
    seq=st.integers(1, MAX_SAFE_INTEGER),
    moment=MOMENTS,
    data=st.data(),
    writer_signature=st.none() | TEXT,
)
def test_fill_is_byte_identical_to_the_reference_canonicalization(
    origin: str,
    header: EventHeader,
    writer: dict[str, Any],
    commitment: bytes,
    prev: bytes,
    seq: int,
    moment: datetime,
    data: st.DataObject,
    writer_signature: str | None,
) -> None:
    conversation_prev = data.draw(st.none() | st.integers(0, seq - 1))
    filled, reference = both(
        origin=origin,
        header=header,
        writer=writer,
        commitment=commitment,
        seq=seq,
        prev=prev,
        moment=moment,
        conversation_prev=conversation_prev,
        writer_signature=writer_signature,
    )
    assert filled == reference


def test_a_realistic_entry_and_the_genesis_entry() -> None:
    header = EventHeader(
        event_id="evt-1",
        source="urn:acme:support-bot",
        type="handoff.message.created.v1",
        time="2026-11-20T09:14:01.000000Z",
        conversation_id="conv-é-😀",
        actor={"kind": "ai_agent", "id": "bot"},
        outcome="success",
        resource={"type": "message", "id": "m1", "\ufb01": 1.5, "\U0001f600": [1e21, -0.0]},
    )
    for seq, conversation_prev in ((0, None), (7, 3)):
        filled, reference = both(
            origin="acme.example/log",
            header=header,
            writer={"credential": 4, "role": "writer", "label": "bot"},
            commitment=bytes(range(32)),
            seq=seq,
            prev=bytes(32),
            moment=datetime(2026, 11, 20, 9, 14, 1, 5, tzinfo=UTC) + timedelta(days=seq),
            conversation_prev=conversation_prev,
        )
        assert filled == reference
        assert base64.b64encode(bytes(32)) in filled


@pytest.mark.parametrize(
    ("seq", "conversation_prev"), [(-1, None), (MAX_SAFE_INTEGER + 1, None), (5, 5), (5, -1)]
)
def test_fill_refuses_numbers_without_a_valid_canonical_entry(
    seq: int, conversation_prev: int | None
) -> None:
    template = entry_template(
        origin="o",
        header=EventHeader("i", "s", "t", "x", "c", {}, "success", None),
        writer=b"{}",
        commitment=bytes(32),
    )
    with pytest.raises(ValueError, match="out of range"):
        template.fill(
            seq=seq,
            prev=bytes(32),
            received_at=b"2026-01-01T00:00:00.000000Z",
            conversation_prev=conversation_prev,
        )
