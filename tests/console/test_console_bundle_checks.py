"""The bundle page's checks that came after its first version (issue 15, item 5): key rotation
statements, consistency.json, the time window's edges, writer signatures, erasure records and
witness cosignatures, each run in Debian's Chromium (api/console/static/bundle.js) and by
``ops/verify_bundle_standalone.py`` on the same file. For each: a bundle both verify, and a
one-byte change of that part (the manifest hashed and signed again by a key holder where that
is needed, so that only the check itself can catch it) that both reject, naming the same file
and seq.

Bundles come from the fixtures that already build them: pure-data bundles of
tests/test_verify_bundle.py (rotation, consistency, time window), the v2 bundle with erasures and
a witness of tests/test_bundle_v2.py, and writer-signed logs of tests/test_writer_signatures.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from ledger.core.canonical import canonicalize
from ledger.core.cosignature import Cosigner
from ledger.core.signing import NoteSigner
from tests import test_bundle_v2, test_writer_signatures
from tests.console import test_console_browser
from tests.console.test_console_browser import ROOT, shot
from tests.test_verify_bundle import (
    ORIGIN,
    change_one_byte,
    make_log,
    received,
    resign,
    window,
    write_bundle,
    write_full,
    write_zip,
)
from tests.test_writer_signatures import append_forged, post, signed

# Fixtures of the modules they are defined in, used here too.
server = test_console_browser.server
world = test_console_browser.world
browser = test_console_browser.browser
page = test_console_browser.page
keys = test_bundle_v2.keys
exported = test_bundle_v2.exported
writer = test_writer_signatures.writer
keyring = test_writer_signatures.keyring

STANDALONE = ROOT / "ops" / "verify_bundle_standalone.py"
VERIFY = """async ([zip, keyLines, witnessKeys]) => {
  const b = await import('/console/static/bundle.js');
  const v = await import('/console/static/verify.js');
  const keys = [];
  for (const line of keyLines) keys.push(await v.parseVerifierKey(line));
  const r = await b.verifyBundle(v.b64decode(zip).buffer, keys, witnessKeys);
  return {status: r.status, failures: r.failures, warnings: r.warnings, summary: r.summary};
}"""

Found = set[tuple[str | None, int | None]]


def in_page(page: Any, path: Path, keys: list[str], witness_keys: list[str] = ()) -> Any:  # type: ignore[assignment]
    if page.url == "about:blank":
        page.goto("/console/bundle")
    data = base64.b64encode(path.read_bytes()).decode()
    return page.evaluate(VERIFY, [data, keys, list(witness_keys)])


def standalone(path: Path, keys: list[str], witness_keys: list[str] = ()) -> Any:  # type: ignore[assignment]
    keys_file = path.with_suffix(".keys")
    keys_file.write_text("".join(k + "\n" for k in keys))
    witness = [arg for k in witness_keys for arg in ("--witness-key", k)]
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            str(STANDALONE),
            str(path),
            "--verifier-keys-file",
            str(keys_file),
            *witness,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    report["exit"] = done.returncode
    return report


def both(page: Any, path: Path, keys: list[str], witness_keys: list[str] = ()) -> Any:  # type: ignore[assignment]
    """(the page's result, the standalone report) on the same file and keys."""
    return in_page(page, path, keys, witness_keys), standalone(path, keys, witness_keys)


def places(failures: list[dict[str, Any]], check: str | None = None) -> Found:
    return {(f["file"], f["seq"]) for f in failures if check is None or f["check"] == check}


def assert_both_verify(result: Any) -> None:
    browser_result, python = result
    assert browser_result["status"] == "verified", browser_result["failures"]
    assert python["exit"] == 0, python["failures"]


def assert_both_fail_at(result: Any, check: str, where: Found) -> None:
    """Both fail; the page's check ``check`` and the standalone's name the same files and seqs,
    ``where`` among them."""
    browser_result, python = result
    assert browser_result["status"] == "failed"
    assert python["exit"] == 1
    found = places(browser_result["failures"], check)
    assert found == places(python["failures"], check), (browser_result, python["failures"])
    assert where <= found, browser_result["failures"]
    # The same wording: the standalone's message, up to the reason an exception gave.
    wording = [f["message"] for f in python["failures"] if f["check"] == check]
    shown = [f["message"] for f in browser_result["failures"] if f["check"] == check]
    assert any(same_words(a, b) for a in wording for b in shown), (wording, shown)


def same_words(a: str, b: str) -> bool:
    common = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    return common >= min(len(a), len(b), 30)


def rewrite(path: Path, files: dict[str, bytes]) -> Path:
    write_zip(path, files)
    return path


# --- key rotation statements and consistency.json (pure-data bundles) ---------------------------


def test_a_rotation_certified_by_your_key_and_a_consistency_proof(
    page: Any, tmp_path: Path
) -> None:
    """The auditor holds the log's old key only: the rotation statement (signed by the old and
    the new key) certifies the new one, which signed the checkpoint and the manifest; the
    earlier checkpoint of consistency.json is the old key's."""
    old = NoteSigner.generate(ORIGIN)
    log = make_log(signer=NoteSigner.generate(ORIGIN))
    bundle = write_full(tmp_path / "full.zip", log, old)
    good = both(page, bundle.path, [old.verifier_key()])
    assert_both_verify(good)
    assert good[0]["summary"]["certified"] == [log.signer.verifier_key()]
    assert good[1]["certified_keys"] == [log.signer.verifier_key()]
    assert good[0]["summary"]["consistencyFrom"] == good[1]["consistency_from"] == 20

    # One byte of the statement's new key: it certifies nothing, so nothing opens.
    files = dict(bundle.files)
    note = files["rotations/0.note"].decode()
    at = note.index("\nnew ") + len("\nnew ") + len(ORIGIN) + 12
    files["rotations/0.note"] = (
        note[:at] + ("A" if note[at] != "A" else "B") + note[at + 1 :]
    ).encode()
    resign(log, files)
    bad = both(page, rewrite(tmp_path / "rotation.zip", files), [old.verifier_key()])
    assert_both_fail_at(bad, "rotation", {("rotations/0.note", None)})

    # One byte of consistency.json's earlier checkpoint (its size line), signed again.
    files = dict(bundle.files)
    files["consistency.json"] = change_one_byte(files["consistency.json"])
    resign(log, files)
    bad = both(page, rewrite(tmp_path / "consistency.zip", files), [old.verifier_key()])
    assert_both_fail_at(bad, "consistency", {("consistency.json", None)})


def test_a_time_window_complete_at_both_ends_and_one_byte_of_its_start(
    page: Any, tmp_path: Path
) -> None:
    log = make_log()
    key = [log.signer.verifier_key()]
    good = write_bundle(
        tmp_path / "w.zip", log, start=9, end=31, edit_manifest=window(received(10), received(30))
    )
    result = both(page, good.path, key)
    assert_both_verify(result)
    assert result[0]["summary"]["timeWindow"] == result[1]["time_window"]
    # from_time one second later (one digit), signed by the exporter: seq 10, the window's
    # first, is now received before it.
    bad = write_bundle(
        tmp_path / "w2.zip", log, start=9, end=31, edit_manifest=window(received(11), received(30))
    )
    assert_both_fail_at(both(page, bad.path, key), "time_window", {("entries.jsonl", 10)})
    # A clock skew inside the window: a warning at its seq in both, not a failure.
    skewed = make_log(received_at=lambda seq: received(5 if seq == 20 else seq))
    skew = write_bundle(
        tmp_path / "w3.zip",
        skewed,
        start=9,
        end=31,
        edit_manifest=window(received(10), received(30)),
    )
    result = both(page, skew.path, [skewed.signer.verifier_key()])
    assert_both_verify(result)
    assert places(result[0]["warnings"]) == places(result[1]["warnings"]) == {("entries.jsonl", 20)}


# --- erasure records and witness cosignatures (a v2 bundle of the ledger) ------------------------


def v2_keys(exported: dict[str, Any]) -> list[str]:
    return exported["keys"].read_text().splitlines()


def test_erasure_records_and_cosignatures_verify_in_the_page(
    page: Any, exported: dict[str, Any], tmp_path: Path
) -> None:
    keys = v2_keys(exported)
    witness = test_bundle_v2.WITNESS.verifier.verifier_key()
    result = both(page, exported["bundle"], keys, [witness])
    assert_both_verify(result)
    assert result[0]["summary"]["erasures"] == result[1]["erasures"]
    assert result[0]["summary"]["erasures"] == {"by_erasure": 3, "by_retention": 1, "records": 2}
    assert result[0]["summary"]["witnesses"] == result[1]["witnesses"]
    # Without the system log's key, neither can check the records: it cannot run.
    browser_result, python = both(page, exported["bundle"], keys[:1])
    assert browser_result["status"] == "error"
    assert python["exit"] == 2
    assert ".system" in browser_result["failures"][0]["message"]


def test_one_byte_of_an_erasure_record(page: Any, exported: dict[str, Any], tmp_path: Path) -> None:
    keys = v2_keys(exported)
    path = test_bundle_v2.tampered(exported, tmp_path, test_bundle_v2.edit_record_payload)
    erased = test_bundle_v2.erased_seqs(exported)
    result = both(page, path, keys)
    assert_both_fail_at(
        result,
        "erasure",
        {("erasures/records.jsonl", None)} | {("entries.jsonl", seq) for seq in erased[:3]},
    )


def test_one_byte_of_the_system_logs_checkpoint(
    page: Any, exported: dict[str, Any], tmp_path: Path
) -> None:
    keys = v2_keys(exported)
    path = test_bundle_v2.tampered(exported, tmp_path, test_bundle_v2.edit_system_checkpoint)
    erased = test_bundle_v2.erased_seqs(exported)
    result = both(page, path, keys)
    where = {("erasures/checkpoint", None)} | {("entries.jsonl", s) for s in erased}
    assert_both_fail_at(result, "erasure", where)


def test_one_byte_of_a_cosignature_and_a_witness_you_did_not_name(
    page: Any, exported: dict[str, Any], tmp_path: Path
) -> None:
    keys = v2_keys(exported)
    path = test_bundle_v2.tampered(exported, tmp_path, test_bundle_v2.edit_cosignature)
    assert_both_fail_at(both(page, path, keys), "witness", {("witnesses.json", None)})
    # Through the form: the failure as the standalone verifier words it, naming the file.
    page.goto("/console/bundle")
    page.set_input_files("#bundle-file", str(path))
    page.fill("#bundle-keys", "\n".join(keys))
    page.click("button:text-is('Verify')")
    page.wait_for_selector("#bundle[data-verification=failed]")
    assert "witnesses.json: witness: cosignature 0 does not verify" in (
        page.text_content("#bundle .failures") or ""
    )
    shot(page, "bundle-v2-failed")
    other = Cosigner("witness.example", bytes(range(1, 33))).verifier.verifier_key()
    result = both(page, exported["bundle"], keys, [other])
    assert_both_fail_at(result, "witness", {("witnesses.json", None)})


def test_the_v2_bundle_page_shows_what_it_proved(
    page: Any, exported: dict[str, Any], tmp_path: Path
) -> None:
    """Through the form, as an auditor does it: the verdict and what else was proven."""
    page.goto("/console/bundle")
    page.set_input_files("#bundle-file", str(exported["bundle"]))
    page.fill("#bundle-keys", "\n".join(v2_keys(exported)))
    page.fill("#bundle-witness-keys", test_bundle_v2.WITNESS.verifier.verifier_key())
    page.click("button:text-is('Verify')")
    page.wait_for_selector("#bundle[data-verification=verified]")
    text = page.text_content("#bundle") or ""
    assert "3 by erasure, 1 by retention, each covered by one of 2 signed" in text
    assert "witness.example+" in text
    assert "a witness key you named" in text
    assert "Also proven" in text
    assert "Not checked in the browser" not in text
    shot(page, "bundle-v2-verified")


# --- writer signatures ---------------------------------------------------------------------------


def test_writer_signatures_in_a_bundle(
    page: Any,
    client: Any,
    engine: Any,
    settings: Any,
    keyring: Any,
    writer: Any,
    ledger_cli: Any,
    tmp_path: Path,
) -> None:
    w = writer()
    assert post(client, w, *(signed(w, n) for n in range(4))).status_code == 201
    # Every v2 bundle names the tenant's system log (its erasure records, none here): the auditor
    # holds its key too.
    keys = [
        *client.get(f"/v1/logs/{w.log}/verifier-key").text.splitlines(),
        *client.get(f"/v1/logs/{w.log}.system/verifier-key").text.splitlines(),
    ]

    def export(name: str) -> Path:
        path = tmp_path / f"{name}.zip"
        code, _, err = ledger_cli(
            "export", "--log", w.log, "--profile", "soc2-population", "--format", "bundle",
            "-o", str(path),
        )  # fmt: skip
        assert code == 0, err
        return path

    good = export("signed")
    result = both(page, good, keys)
    assert_both_verify(result)
    assert result[0]["summary"]["writerSignatures"] == 4
    # One byte of the system log's record that adds the writer's key (version 2: the keys are
    # what erasures/writer-keys.jsonl proves), the manifest signed again by the log's key: the
    # record fails at its system-log seq, and every entry its key signed at its own seq.
    with zipfile.ZipFile(good) as z:
        files = {n: z.read(n) for n in z.namelist()}
    lines = files["erasures/writer-keys.jsonl"].splitlines()
    added = json.loads(lines[0])
    payload = base64.b64decode(added["payload_b64"])
    added["payload_b64"] = base64.b64encode(change_one_byte(payload)).decode()
    lines[0] = canonicalize(added)
    files["erasures/writer-keys.jsonl"] = b"\n".join(lines) + b"\n"
    path = resigned(engine, keyring, w.log, files, tmp_path / "swapped.zip")
    result = both(page, path, keys)
    assert_both_fail_at(result, "writer_key", {("erasures/writer-keys.jsonl", None)})
    assert any(f"system log seq {added['seq']}" in f["message"] for f in result[0]["failures"])
    assert_both_fail_at(result, "writer_signature", {("entries.jsonl", s) for s in range(4)})
    # The ledger stores a statement the writer did not sign: named by its seq in both.
    seq = append_forged(engine, settings, w)
    assert_both_fail_at(
        both(page, export("forged"), keys), "writer_signature", {("entries.jsonl", seq)}
    )


def resigned(engine: Any, ring: Any, log_id: str, files: dict[str, bytes], path: Path) -> Path:
    """``files`` re-hashed into the manifest, signed again with the log's own key."""
    write_zip(path, files)
    exported = {"bundle": path, "engine": engine, "log": log_id, "ring": ring}
    return test_bundle_v2.tampered(exported, path.parent, lambda _: None)
