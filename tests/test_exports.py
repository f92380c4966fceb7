"""Exports end to end on real PostgreSQL: ``POST /v1/logs/{log}/exports`` and ``ledger export``
produce bundles that ``ledger verify-bundle`` accepts, record each export in the system log
before it is served, and refuse what cannot be exported as asked (422, nothing recorded)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ledger.core.sampling import sample_seqs
from tests.conftest import make_event

CONVERSATION = "c-2f9e1a"
CUSTOMER = "cust-91b7"


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


@pytest.fixture
def filled(client: Any, example_log: str, token: Any) -> str:
    """The example conversation (seqs 0..15), then 30 small events of three conversations."""
    writer = token(example_log, "writer")
    batch = {"events": [make_event(f"c-x{n % 3}", n) for n in range(30)]}
    r = client.post(f"/v1/logs/{example_log}/events", json=batch, headers=auth(writer))
    assert r.status_code == 201, r.text
    return example_log


def export(client: Any, token: Any, log_id: str, **body: Any) -> Any:
    return client.post(
        f"/v1/logs/{log_id}/exports", json=body, headers=auth(token(log_id, "auditor"))
    )


def open_zip(content: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(content))


def manifest(content: bytes) -> dict[str, Any]:
    with open_zip(content) as z:
        doc: dict[str, Any] = json.loads(z.read("manifest.json"))
        return doc


def verify(client: Any, log_id: str, content: bytes, tmp_path: Path) -> Any:
    from ledger.core.signing import NoteVerifier
    from ledger.services.exports.verify import verify_bundle

    path = tmp_path / "bundle.zip"
    path.write_bytes(content)
    keys = client.get(f"/v1/logs/{log_id}/verifier-key").text.split()
    return verify_bundle(path, [NoteVerifier.from_verifier_key(k) for k in keys])


def export_events(client: Any, token: Any, log_id: str) -> list[dict[str, Any]]:
    system = f"{log_id}.system"
    r = client.get(f"/v1/logs/{system}/entries", headers=auth(token(system, "auditor")))
    return [
        e for e in r.json()["entries"] if e["entry"]["event"]["type"] == "ledger.export.created.v1"
    ]


def test_a_population_bundle_verifies_and_its_export_is_recorded_first(
    client: Any, token: Any, filled: str, tmp_path: Path
) -> None:
    r = export(client, token, filled, profile="soc2-population")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    doc = manifest(r.content)
    assert doc["selection"] == "range"
    assert doc["range"] == {"start": 0, "end": 46}
    assert doc["count"] == 46
    assert doc["first"]["seq"] == 0
    assert doc["last"]["seq"] == 45
    report = verify(client, filled, r.content, tmp_path)
    assert report.intact, report.failures
    [event] = export_events(client, token, filled)
    digest = hashlib.sha256(open_zip(r.content).read("manifest.json")).hexdigest()
    assert event["payload"]["digest"] == {"manifest_sha256": digest}
    assert r.headers["x-ledger-export-sha256"] == digest
    assert event["payload"]["count"] == 46
    assert event["payload"]["actor"]["role"] == "auditor"


def test_a_seq_range_carries_its_proof_and_payloads(
    client: Any, token: Any, filled: str, tmp_path: Path
) -> None:
    r = export(client, token, filled, profile="soc2-population", start_seq=5, end_seq=20)
    assert r.status_code == 200, r.text
    with open_zip(r.content) as z:
        lines = [json.loads(x) for x in z.read("entries.jsonl").splitlines()]
        proof = json.loads(z.read("proofs/range.json"))
    assert [x["seq"] for x in lines] == list(range(5, 20))
    assert proof["start"] == 5
    assert proof["end"] == 20
    assert proof["tree_size"] == 46
    for line in lines:
        payload = base64.b64decode(line["payload_b64"])
        salt = base64.b64decode(line["payload_salt"])
        entry = json.loads(base64.b64decode(line["entry_b64"]))
        commitment = base64.b64encode(hashlib.sha256(salt + payload).digest()).decode()
        assert entry["payload"]["commitment"] == commitment
    assert verify(client, filled, r.content, tmp_path).intact


def test_the_sample_is_drawn_from_the_checkpoint_root_and_the_seed(
    client: Any, token: Any, filled: str, tmp_path: Path
) -> None:
    r = export(client, token, filled, profile="soc2-population", sample=5, seed="auditor-1")
    assert r.status_code == 200, r.text
    doc = manifest(r.content)
    assert doc["selection"] == "sample"
    root = base64.b64decode(doc["root"])
    expected = sample_seqs(root, "auditor-1", 0, 46, 5)
    with open_zip(r.content) as z:
        seqs = [json.loads(x)["seq"] for x in z.read("entries.jsonl").splitlines()]
        names = set(z.namelist())
    assert set(expected) <= set(seqs)
    assert seqs == sorted({0, 45, *expected})
    assert {f"proofs/{s}.tlog-proof" for s in seqs} <= names
    assert verify(client, filled, r.content, tmp_path).intact
    again = export(client, token, filled, profile="soc2-population", sample=5, seed="auditor-1")
    assert manifest(again.content)["sample"] == doc["sample"]


def test_a_data_subject_export_holds_its_conversations_whole(
    client: Any, token: Any, filled: str, tmp_path: Path
) -> None:
    r = export(
        client,
        token,
        filled,
        profile="hipaa-disclosures",
        data_subject=CUSTOMER,
        format="bundle",
        include=["csv", "html"],
    )
    assert r.status_code == 200, r.text
    doc = manifest(r.content)
    assert doc["selection"] == "entries"
    assert doc["conversations"] == [CONVERSATION]
    assert doc["count"] == 16
    with open_zip(r.content) as z:
        assert {"reports/rows.csv", "reports/report.html"} <= set(z.namelist())
    assert verify(client, filled, r.content, tmp_path).intact


def test_pci_exports_carry_no_payloads(client: Any, token: Any, filled: str) -> None:
    r = export(client, token, filled, profile="pci-dss-10", conversations=[CONVERSATION])
    assert r.status_code == 200, r.text
    with open_zip(r.content) as z:
        lines = [json.loads(x) for x in z.read("entries.jsonl").splitlines()]
    assert {x["payload_status"] for x in lines} == {"withheld"}
    assert all(x["payload_b64"] is None for x in lines)


def test_the_cli_exports_and_verify_bundle_accepts_it(
    client: Any, token: Any, filled: str, ledger_cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "population.zip"
    code, _, err = ledger_cli(
        "export",
        "--log",
        filled,
        "--profile",
        "soc2-population",
        "--start-seq",
        "10",
        "-o",
        str(out),
    )
    assert code == 0, err
    keys = tmp_path / "keys"
    keys.write_text(client.get(f"/v1/logs/{filled}/verifier-key").text)
    code, stdout, err = ledger_cli("verify-bundle", str(out), "--verifier-keys-file", str(keys))
    assert code == 0, stdout + err
    assert [e["payload"]["query"] for e in export_events(client, token, filled)] == [
        {"format": "bundle", "profile": "soc2-population", "start_seq": 10}
    ]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"profile": "soc3"}, "profile must be one of"),
        ({"profile": "soc2-population", "format": "pdf"}, "format must be one of"),
        ({"profile": "soc2-population", "start_seq": 9, "end_seq": 3}, "empty or inverted"),
        ({"profile": "soc2-population", "start_seq": 3, "end_seq": 3}, "empty or inverted"),
        ({"profile": "soc2-population", "start_seq": 40, "end_seq": 400}, "beyond the log"),
        ({"profile": "soc2-population", "sample": 1000}, "larger than the population"),
        ({"profile": "hipaa-disclosures", "data_subject": "nobody"}, "no conversation"),
        ({"profile": "hipaa-disclosures"}, "one data_subject"),
        ({"profile": "soc2-population", "since_checkpoint": "not a note"}, "since_checkpoint"),
        ({"profile": "soc2-population", "from_time": "yesterday"}, "RFC 3339"),
        ({"profile": "soc2-population", "colour": "red"}, "unknown field"),
    ],
)
def test_what_cannot_be_exported_is_refused_and_not_recorded(
    client: Any, token: Any, filled: str, body: dict[str, Any], says: str
) -> None:
    r = export(client, token, filled, **body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert says in r.json()["detail"]
    assert export_events(client, token, filled) == []


def test_only_auditors_export(client: Any, token: Any, filled: str) -> None:
    r = client.post(
        f"/v1/logs/{filled}/exports",
        json={"profile": "soc2-population"},
        headers=auth(token(filled, "writer")),
    )
    assert r.status_code == 403


def test_a_tampered_bundle_fails(client: Any, token: Any, filled: str, tmp_path: Path) -> None:
    r = export(client, token, filled, profile="soc2-population")
    buf = io.BytesIO()
    with open_zip(r.content) as src, zipfile.ZipFile(buf, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "entries.jsonl":
                data = data.replace(b'"payload_status":"verified"', b'"payload_status":"erased"', 1)
            dst.writestr(name, data)
    assert not verify(client, filled, buf.getvalue(), tmp_path).intact


def test_a_bundle_proves_consistency_from_a_checkpoint_the_auditor_holds(
    client: Any, token: Any, example_log: str, tmp_path: Path
) -> None:
    held = client.get(f"/v1/logs/{example_log}/checkpoint").text  # size 16
    writer = token(example_log, "writer")
    batch = {"events": [make_event("c-later", n) for n in range(5)]}
    assert (
        client.post(f"/v1/logs/{example_log}/events", json=batch, headers=auth(writer)).status_code
        == 201
    )
    r = export(client, token, example_log, profile="soc2-population", since_checkpoint=held)
    assert r.status_code == 200, r.text
    with open_zip(r.content) as z:
        consistency = json.loads(z.read("consistency.json"))
    assert consistency["from"] == held
    assert consistency["from_size"] == 16
    assert consistency["to_size"] == 21
    assert verify(client, example_log, r.content, tmp_path).intact


def test_the_access_report_names_an_auditors_trail_read_without_the_auditor(
    client: Any, token: Any, filled: str
) -> None:
    auditor = token(filled, "auditor")
    r = client.get(f"/v1/logs/{filled}/conversations/{CONVERSATION}/trail", headers=auth(auditor))
    assert r.status_code == 200
    r = export(
        client, token, filled, profile="hipaa-disclosures", data_subject=CUSTOMER, format="csv"
    )
    assert r.status_code == 200, r.text
    reads = [line for line in r.text.splitlines() if "trail.read" in line]
    assert len(reads) == 1
    assert CONVERSATION in reads[0]
    assert "test auditor" not in r.text
