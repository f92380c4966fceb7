"""Key providers (issue 14.8): the master key from an environment variable (as before), a file,
or a plugin (``LEDGER_KEY_PROVIDER=package.module:factory``) a KMS fits into; the ring keyed by
master key id; bad configuration refused with a message that names no key byte."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ledger.core.sealing import seal, unseal
from ledger.errors import ConfigurationError, DecryptionFailed, KeyProviderUnavailable
from ledger.keys.config import master_key_ring, provider_from_spec
from ledger.keys.provider import LocalKeyProvider, local_key_id
from ledger.keys.ring import MasterKeyRing
from ledger.settings import Settings
from ledger.storage.db import unit_of_work
from tests import key_provider_plugin as plugin
from tests.conftest import MASTER_KEY, make_event, migrated_database

KEY = base64.b64decode(MASTER_KEY)
PLUGIN = "tests.key_provider_plugin:transit"


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(data_dir=tmp_path, **values)


def test_the_environment_variable_keeps_working_unchanged(tmp_path: Path) -> None:
    """Existing deployments: LEDGER_MASTER_KEY, and a blob wrapped the way keys always were
    opens (the local provider's layout is ``ledger.core.sealing``'s, unchanged)."""
    ring = master_key_ring(_settings(tmp_path, master_key=MASTER_KEY))
    assert ring.ids == [local_key_id(KEY)] == [ring.wrapping_id]
    legacy = seal(KEY, b"k" * 32, b"ctx")
    assert ring.unwrap(None, legacy, context=b"ctx") == b"k" * 32
    assert ring.unwrap(local_key_id(KEY), legacy, context=b"ctx") == b"k" * 32
    assert unseal(KEY, ring.wrap(b"x", context=b"ctx"), b"ctx") == b"x"


def test_a_key_file_names_the_same_master_key(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text(MASTER_KEY + "\n")
    by_file = master_key_ring(_settings(tmp_path, master_key_file=path))
    by_spec = provider_from_spec(f"file:{path}")
    assert by_file.ids == [local_key_id(KEY)] == [by_spec.key_id]


def test_the_development_key_file_is_made_once(tmp_path: Path) -> None:
    first = master_key_ring(_settings(tmp_path), create=True)
    second = master_key_ring(_settings(tmp_path))
    assert first.ids == second.ids
    with pytest.raises(ConfigurationError, match="no master key"):
        master_key_ring(_settings(tmp_path / "elsewhere"))


def test_the_key_id_is_a_check_value_not_the_key() -> None:
    key_id = local_key_id(KEY)
    assert key_id.startswith("local:")
    assert len(key_id) == len("local:") + 16
    assert KEY.hex()[:16] not in key_id
    assert local_key_id(b"\x08" * 32) != key_id


def test_the_extra_providers_join_the_ring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = secrets.token_bytes(32)
    monkeypatch.setenv("NEXT_MASTER_KEY", base64.b64encode(other).decode())
    ring = master_key_ring(
        _settings(
            tmp_path,
            master_key=MASTER_KEY,
            extra_key_providers=f"env:NEXT_MASTER_KEY, {PLUGIN}:extra",
        )
    )
    assert ring.ids == [local_key_id(KEY), local_key_id(other), "test-kms:extra"]
    assert ring.wrapping_id == local_key_id(KEY)
    # Each row opens with the key its master_key_id names, and only with that one.
    wrapped = ring.wrap(b"secret", context=b"c", key_id=local_key_id(other))
    assert ring.unwrap(local_key_id(other), wrapped, context=b"c") == b"secret"
    with pytest.raises(DecryptionFailed, match=local_key_id(KEY)):
        ring.unwrap(local_key_id(KEY), wrapped, context=b"c")
    assert ring.unwrap(None, wrapped, context=b"c") == b"secret"  # unrecorded: any that opens
    with pytest.raises(DecryptionFailed):
        ring.unwrap(local_key_id(other), wrapped, context=b"another row")


def test_follow_switches_wrapping_only_to_a_held_key() -> None:
    ring = MasterKeyRing([LocalKeyProvider(KEY), plugin.transit("b")])
    assert ring.follow("test-kms:b")
    assert ring.wrapping_id == "test-kms:b"
    assert not ring.follow("test-kms:unheld")
    assert ring.wrapping_id == ring.primary_id
    assert ring.follow(None)
    assert ring.wrapping_id == ring.primary_id


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("aws-kms:alias/ledger", "unknown key provider"),
        ("kms:whatever", "cannot import"),
        ("env:LEDGER_TEST_UNSET_VARIABLE", "is not set"),
        ("file:/nonexistent/master.key", "does not exist"),
        ("tests.no_such_module:factory", "cannot import"),
        ("tests.key_provider_plugin:missing", "no callable"),
        ("tests.key_provider_plugin:NOT_CALLABLE", "no callable"),
        ("tests.key_provider_plugin:not_a_provider", "did not return a KeyProvider"),
        ("tests.key_provider_plugin:broken", "the factory failed (RuntimeError)"),
    ],
)
def test_a_bad_provider_spec_is_refused_precisely(spec: str, message: str) -> None:
    with pytest.raises(
        ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")
    ) as e:
        provider_from_spec(spec)
    assert "secret-token-123" not in str(e.value)  # a plugin's own message is never echoed


@pytest.mark.parametrize(
    "value",
    ["not base64!", base64.b64encode(b"short").decode(), base64.b64encode(KEY + b"x").decode()],
)
def test_a_bad_key_value_is_refused_without_echoing_it(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_TEST_BAD_KEY", value)
    path = tmp_path / "bad.key"
    path.write_text(value)
    for spec in ("env:LEDGER_TEST_BAD_KEY", f"file:{path}"):
        with pytest.raises(ConfigurationError) as e:
            provider_from_spec(spec)
        assert value not in str(e.value)
        assert "base64" in str(e.value) or "32 bytes" in str(e.value)


def test_a_failing_kms_becomes_key_provider_unavailable_naming_only_its_class() -> None:
    plugin.FAIL_AFTER["flaky"] = 0
    try:
        ring = MasterKeyRing([plugin.transit("flaky")])
        with pytest.raises(KeyProviderUnavailable, match=r"test-kms:flaky.*ConnectionError"):
            ring.wrap(b"x" * 32, context=b"c")
    finally:
        del plugin.FAIL_AFTER["flaky"]


def test_a_ring_with_a_plugin_pickles_as_its_spec(tmp_path: Path) -> None:
    """``ledger verify --jobs N`` hands the key store to other processes."""
    ring = master_key_ring(_settings(tmp_path, key_provider=f"{PLUGIN}:pickled"))
    wrapped = ring.wrap(b"data key", context=b"c")
    again = pickle.loads(pickle.dumps(ring))
    assert again.ids == ["test-kms:pickled"]
    assert again.unwrap("test-kms:pickled", wrapped, context=b"c") == b"data key"
    assert KEY not in pickle.dumps(ring)


@pytest.fixture
def own_db(admin_url: str) -> Iterator[str]:
    """A database of its own: the card guard's fingerprint key is one per database, and this
    one's is wrapped by the plugin, which the other tests' servers do not hold."""
    with migrated_database(admin_url, "ledger_test_kms") as url:
        yield url


def test_the_fingerprint_key_keeps_its_value_for_a_local_master_key(engine: Engine) -> None:
    """Card fingerprints made before the key was stored wrapped stay the same: for a local
    master key the stored value is what it was derived as."""
    from ledger.storage.keystore import pan_fingerprint_key

    with unit_of_work(engine) as conn:
        stored = pan_fingerprint_key(conn, MasterKeyRing.local(KEY))
    assert stored == hmac.new(KEY, b"handoff-ledger/pan-fingerprint/v1", hashlib.sha256).digest()


def test_a_kms_plugin_serves_the_whole_ledger(
    own_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Plugged in through LEDGER_KEY_PROVIDER: logs, credentials, ingest, reads and a full
    verification all work, every key row names the plugin's master key and holds its blobs,
    and the card guard's fingerprint key is stored wrapped (a KMS has no key to derive from)."""
    db_url = own_db
    from fastapi.testclient import TestClient

    from api.app import create_app
    from ledger.cli import main

    spec = f"{PLUGIN}:whole-ledger"
    monkeypatch.setenv("LEDGER_DATABASE_URL", db_url)
    monkeypatch.setenv("LEDGER_KEY_PROVIDER", spec)
    monkeypatch.setenv("LEDGER_MASTER_KEY", MASTER_KEY)  # present, but the plugin wins
    monkeypatch.setenv("LEDGER_ORIGIN_PREFIX", "ledger.test")
    monkeypatch.setenv("LEDGER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEDGER_VERIFIER_STATE_DIR", str(tmp_path / "verifier"))
    log_id = f"kms-{secrets.token_hex(4)}"
    tenant = f"tenant-{secrets.token_hex(4)}"
    assert main(["logs", "create", log_id, "--tenant", tenant]) == 0
    assert main(["credentials", "create", "--log", log_id, "--role", "writer"]) == 0
    writer = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["credentials", "create", "--log", log_id, "--role", "auditor"]) == 0
    auditor = capsys.readouterr().out.strip().splitlines()[-1]
    before = plugin.CALLS["whole-ledger:unwrap"]

    settings = Settings(
        database_url=db_url, key_provider=spec, data_dir=tmp_path, origin_prefix="ledger.test"
    )
    with TestClient(create_app(settings)) as http:
        r = http.post(
            f"/v1/logs/{log_id}/events",
            json={"events": [make_event("kms-a", 0), make_event("kms-b", 1)]},
            headers={"Authorization": f"Bearer {writer}"},
        )
        assert r.status_code == 201, r.text
        r = http.get(
            f"/v1/logs/{log_id}/entries?start=0&end=2",
            headers={"Authorization": f"Bearer {auditor}"},
        )
        assert r.status_code == 200, r.text
        assert [e["payload_status"] for e in r.json()["entries"]] == ["verified", "verified"]
    assert plugin.CALLS["whole-ledger:unwrap"] > before  # the ledger asked the provider

    engine: Engine
    from ledger.storage.db import make_engine

    engine = make_engine(db_url, pool_size=1)
    try:
        with unit_of_work(engine) as conn:
            rows = conn.execute(
                text(
                    "SELECT d.master_key_id, d.wrapped FROM data_keys d JOIN logs l"
                    " ON l.id = d.log_id WHERE l.tenant = :t"
                    " UNION ALL SELECT k.master_key_id, k.sealed_private FROM signing_keys k"
                    " JOIN logs l ON l.id = k.log_id WHERE l.tenant = :t"
                    " UNION ALL SELECT master_key_id, wrapped FROM wrapped_secrets"
                ),
                {"t": tenant},
            ).all()
    finally:
        engine.dispose()
    assert len(rows) >= 5  # two conversations, the system streams, two signing keys, and
    # the card guard's fingerprint key
    assert {r[0] for r in rows} == {"test-kms:whole-ledger"}
    assert all(bytes(r[1]).startswith(plugin.PREFIX) for r in rows)

    assert main(["verify", "--log", log_id, "--full", "--json"]) == 0
    capsys.readouterr()

    # The KMS stops answering: reads are a 503 that says only that (the operator's log names
    # the master key and the exception's class, never what it was asked to unwrap).
    plugin.UNREACHABLE.add("whole-ledger")
    try:
        with TestClient(create_app(settings)) as http:
            r = http.get(
                f"/v1/logs/{log_id}/entries?start=0&end=2",
                headers={"Authorization": f"Bearer {auditor}"},
            )
    finally:
        plugin.UNREACHABLE.discard("whole-ledger")
    assert r.status_code == 503
    assert r.json()["detail"] == "a key service is unavailable; retry later"
    assert "timed out" not in r.text


def test_without_the_plugin_nothing_opens() -> None:
    """The same database read with only the local key: a row the plugin wrapped refuses to
    open, with a message naming master key ids only."""
    ring = MasterKeyRing.local(KEY)
    blob = plugin.transit("whole-ledger").wrap(b"k" * 32, context=b"c")
    with pytest.raises(DecryptionFailed, match="test-kms:whole-ledger is not configured") as e:
        ring.unwrap("test-kms:whole-ledger", blob, context=b"c")
    assert KEY.hex() not in str(e.value)
    assert MASTER_KEY not in str(e.value)
