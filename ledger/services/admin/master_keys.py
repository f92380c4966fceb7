"""Master keys: rotation without downtime, and retirement once nothing is wrapped under one.

Rotation (``rotate_master``) re-wraps every data key, signing key and wrapped secret under the
target master key while servers keep serving:

1. **Check first, change nothing on bad input**: the target must be held by this process and
   not retired, and one row per master key id found in the database must open with the keys
   this process holds (a missing or wrong old key is refused here, before anything changed).
2. **Activate** the target (``master_key_changes``): every server that holds it wraps new keys
   under it within ``LEDGER_MASTER_KEY_REFRESH_SECONDS``; servers open each row with the key
   its ``master_key_id`` names, so old and new rows both open throughout.
3. **Re-wrap in batches**, each its own short transaction that takes no lock a server waits on
   for long: read rows not under the target, unwrap, wrap under the target, write back
   compare-and-set on the wrapped bytes (a key erased meanwhile stays erased). Per tenant, a
   ``ledger.master_key.rotation.started.v1`` before and a ``...finished.v1`` after, in the
   tenant's system log (counts and master key ids, never key material).
4. **Sweep** again for keys servers created under another key before they followed, until a
   pass finds none (bounded: ``Rotation.remaining`` says what is left, and a re-run finishes).

Idempotent and resumable: a row already under the target is never touched, so a re-run after a
crash (or a second run) does only what is left, and records ``resumed``.

Retirement (``retire_master``) is refused while any live key is wrapped under the master key
(or under an unrecorded one that might be it), or while it is the active one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from ledger.errors import (
    ConfigurationError,
    CryptoError,
    KeyProviderUnavailable,
    KeyStateConflict,
    NotFound,
)
from ledger.keys.ring import MasterKeyRing
from ledger.services.system_log import SystemLog, master_key_event
from ledger.storage.db import unit_of_work
from ledger.storage.keystore import (
    KEY_TABLES,
    KeyRing,
    KeyTable,
    WrappedSample,
    count_not_under,
    count_wrapped_by,
    lock_master_key_changes,
    master_key_state,
    open_sample,
    record_master_key_change,
    rewrap_batch,
    sample_wrapped,
)
from ledger.storage.logs import list_logs

DEFAULT_BATCH = 500
MAX_SWEEPS = 5

Clock = Callable[[], datetime]
Progress = Callable[[str, int], None]


@dataclass
class Rotation:
    """What a rotation did, for the operator (and the measurements)."""

    target: str
    resumed: bool
    rewrapped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KEY_TABLES, 0))
    skipped: int = 0
    """Rows that changed between read and write (erased, or re-wrapped by another run)."""
    passes: int = 0
    seconds: float = 0.0
    waited: float = 0.0
    """Of ``seconds``, spent waiting for servers to follow the activation before a sweep."""
    remaining: int = 0
    """Keys still not under the target after the last sweep (a server without the target key
    kept wrapping under its own): give every server the key, and run the rotation again."""

    @property
    def total(self) -> int:
        return sum(self.rewrapped.values())

    @property
    def rate(self) -> float:
        """Keys re-wrapped per second of work (the waits for servers left out)."""
        working = self.seconds - self.waited
        return self.total / working if working > 0 else 0.0


def rotate_master(
    engine: Engine,
    keys: KeyRing,
    target: str,
    *,
    actor: dict[str, Any],
    now: Clock,
    batch: int = DEFAULT_BATCH,
    settle_seconds: float = 2.0,
    max_rate: float | None = None,
    progress: Progress | None = None,
) -> Rotation:
    """Re-wrap every key under master key ``target`` (held by ``keys.masters``); at most
    ``max_rate`` keys a second when given (the rest of the machine is the servers')."""
    masters = keys.masters
    if batch < 1:
        raise ConfigurationError("the batch size is at least 1")
    if not masters.holds(target):
        raise ConfigurationError(f"master key {target} is not configured in this process")
    started = time.monotonic()
    with unit_of_work(engine) as conn:
        lock_master_key_changes(conn)
        state = master_key_state(conn)
        if target in state.retired:
            raise KeyStateConflict(f"master key {target} was retired; rotate to a new one")
        replaced = _check_every_master_key_opens(masters, sample_wrapped(conn)) - {target}
        resumed = state.active == target
        at = now()
        if not resumed:
            record_master_key_change(conn, target, "activated", at=at, actor=_actor_id(actor))
        for old in sorted(replaced - set(state.known)):
            # Named, so that it can be retired once the rotation is done, by a process that
            # holds only the new key.
            record_master_key_change(conn, old, "superseded", at=at, actor=_actor_id(actor))
    masters.follow(target)
    report = Rotation(target=target, resumed=resumed)

    def sweep() -> int:
        return _pass(
            engine,
            keys,
            target,
            report,
            actor=actor,
            now=now,
            batch=batch,
            max_rate=max_rate,
            p=progress,
        )

    found = sweep()
    while found and report.passes < MAX_SWEEPS:
        # Servers follow the activation within their refresh interval; what they wrapped under
        # another key before that is swept up here.
        time.sleep(settle_seconds)
        report.waited += settle_seconds
        found = sweep()
    if found:
        with unit_of_work(engine) as conn:
            report.remaining = sum(
                sum(count_not_under(conn, tenant=t, target=target).values()) for t in _tenants(conn)
            )
    report.seconds = time.monotonic() - started
    return report


def _pass(
    engine: Engine,
    keys: KeyRing,
    target: str,
    report: Rotation,
    *,
    actor: dict[str, Any],
    now: Clock,
    batch: int,
    max_rate: float | None,
    p: Progress | None,
) -> int:
    """One pass over the ledger's secrets and every tenant; the number of keys it re-wrapped."""
    report.passes += 1
    with unit_of_work(engine) as conn:
        secrets = rewrap_batch(
            conn, keys.masters, "wrapped_secrets", log_id=None, target=target, after="", limit=batch
        )
    report.rewrapped["wrapped_secrets"] += secrets.rewrapped
    report.skipped += secrets.skipped
    found = secrets.rewrapped
    with unit_of_work(engine) as conn:
        logs = list_logs(conn)
    tenants = sorted({log.tenant for log in logs})
    for tenant in tenants:
        with unit_of_work(engine) as conn:
            todo = count_not_under(conn, tenant=tenant, target=target)
            if not any(todo.values()):
                continue
            _record_rotation(
                conn,
                keys,
                tenant,
                "rotation.started",
                {
                    "master_key": target,
                    "data_keys": todo["data_keys"],
                    "signing_keys": todo["signing_keys"],
                    "batch_size": batch,
                    "resumed": report.resumed or report.passes > 1,
                },
                actor=actor,
                now=now,
            )
        t0 = batch_started = time.monotonic()
        done = dict.fromkeys(("data_keys", "signing_keys"), 0)
        skipped = 0
        tables: tuple[KeyTable, ...] = ("signing_keys", "data_keys")
        for log_id, table in itertools.product(
            sorted(log.id for log in logs if log.tenant == tenant), tables
        ):
            after = ""
            while True:
                with unit_of_work(engine) as conn:
                    step = rewrap_batch(
                        conn,
                        keys.masters,
                        table,
                        log_id=log_id,
                        target=target,
                        after=after,
                        limit=batch,
                    )
                if step.read == 0:
                    break
                after = step.cursor
                done[table] += step.rewrapped
                skipped += step.skipped
                if p is not None:
                    p(tenant, sum(done.values()))
                if max_rate:
                    # Leave the machine to the servers: at most ``max_rate`` keys a second.
                    pause = step.read / max_rate - (time.monotonic() - batch_started)
                    if pause > 0:
                        time.sleep(pause)
                        report.waited += pause
                batch_started = time.monotonic()
        seconds = time.monotonic() - t0
        with unit_of_work(engine) as conn:
            _record_rotation(
                conn,
                keys,
                tenant,
                "rotation.finished",
                {
                    "master_key": target,
                    "data_keys_rewrapped": done["data_keys"],
                    "signing_keys_rewrapped": done["signing_keys"],
                    "skipped": skipped,
                    "seconds": round(seconds, 3),
                },
                actor=actor,
                now=now,
            )
        for name, count in done.items():
            report.rewrapped[name] += count
        report.skipped += skipped
        found += sum(done.values())
    return found


def _record_rotation(
    conn: Connection,
    keys: KeyRing,
    tenant: str,
    change: str,
    data: dict[str, Any],
    *,
    actor: dict[str, Any],
    now: Clock,
) -> None:
    """``ledger.master_key.<change>.v1`` in the tenant's system log, in ``conn``'s unit of work."""
    at = now()
    SystemLog.in_transaction(conn, keys, now=at).record_durably(
        tenant, master_key_event(change, data=data, actor=actor, now=at)
    )


@dataclass(frozen=True)
class MasterKeyListing:
    """A master key as ``ledger keys masters`` lists it."""

    master_key_id: str | None
    """None: keys wrapped before master key ids were recorded (migration 0012)."""
    state: str
    """``active`` (new keys are wrapped under it), ``superseded`` (a rotation replaces it),
    ``retired`` (nothing is wrapped under it), or ``in use`` (never rotated)."""
    wrapped: dict[str, int]
    held: bool


def list_master_keys(engine: Engine, keys: KeyRing) -> list[MasterKeyListing]:
    """Every master key the database names, with how many live keys each wraps."""
    with unit_of_work(engine) as conn:
        state = master_key_state(conn)
        counts = count_wrapped_by(conn)
    ids: list[str | None] = list(state.known)
    ids += [i for i in counts if i not in ids]
    out = []
    for master_key_id in ids:
        if master_key_id is not None and master_key_id in state.retired:
            status = "retired"
        elif master_key_id is not None and master_key_id == state.active:
            status = "active"
        elif master_key_id in state.known:  # named by a change, and no longer active
            status = "superseded"
        else:
            status = "in use"
        out.append(
            MasterKeyListing(
                master_key_id,
                status,
                counts.get(master_key_id, dict.fromkeys(KEY_TABLES, 0)),
                master_key_id is not None and keys.masters.holds(master_key_id),
            )
        )
    return out


def retire_master(
    engine: Engine, keys: KeyRing, master_key_id: str, *, actor: dict[str, Any], now: Clock
) -> None:
    """Record that ``master_key_id`` wraps nothing any more (its holder may destroy it), in
    ``master_key_changes`` and every tenant's system log; refused while anything is wrapped
    under it (or under an unrecorded master key), or while it is the active one."""
    with unit_of_work(engine) as conn:
        lock_master_key_changes(conn)
        state = master_key_state(conn)
        counts = count_wrapped_by(conn)
        # Known: named by a change, wrapping something, or configured here (the key a first
        # rotation replaced, whose rows were wrapped before ids were recorded, is only that).
        known = [*state.known, *(i for i in counts if i), *keys.masters.ids]
        if master_key_id not in known:
            names = ", ".join(dict.fromkeys(known)) or "none"
            raise NotFound(f"no master key {master_key_id!r} (known: {names})")
        if master_key_id in state.retired:
            raise KeyStateConflict(f"master key {master_key_id} is retired already")
        if state.active is not None and not keys.masters.holds(state.active):
            raise ConfigurationError(
                f"the active master key {state.active} is not configured here (it signs and"
                " wraps what this command records): configure it, e.g. as LEDGER_KEY_PROVIDER"
            )
        if master_key_id == state.active:
            raise KeyStateConflict(
                f"master key {master_key_id} is the active one: rotate to another first"
                " (`ledger keys rotate-master --to SPEC`)"
            )
        still = {
            table: count
            for owner in (master_key_id, None)
            for table, count in counts.get(owner, {}).items()
            if count
        }
        if still:
            what = ", ".join(f"{count} {table}" for table, count in sorted(still.items()))
            raise KeyStateConflict(
                f"master key {master_key_id} may still wrap {what}: run"
                f" `ledger keys rotate-master --to {state.active or 'SPEC'}` to the end first"
            )
        at = now()
        record_master_key_change(conn, master_key_id, "retired", at=at, actor=_actor_id(actor))
        system = SystemLog.in_transaction(conn, keys, now=at)
        for tenant in _tenants(conn):
            system.record_durably(
                tenant,
                master_key_event(
                    "retired",
                    data={"master_key": master_key_id, "successor": state.active},
                    actor=actor,
                    now=at,
                ),
            )


def _check_every_master_key_opens(masters: MasterKeyRing, samples: list[WrappedSample]) -> set[str]:
    """Open one row per master key id found; the ids of the master keys that opened them (for
    a row wrapped before ids were recorded, the held key that opens it)."""
    opened: set[str] = set()
    for sample in samples:
        table, _, _, master_key_id, _ = sample
        try:
            if master_key_id is not None:
                open_sample(masters, sample)
                opened.add(master_key_id)
                continue
            for held in masters.ids:
                try:
                    open_sample(MasterKeyRing([masters.provider(held)]), sample)
                except CryptoError:
                    continue
                opened.add(held)
                break
            else:
                open_sample(masters, sample)  # raises, naming every key it tried
        except (CryptoError, KeyProviderUnavailable) as exc:
            owner = master_key_id or "a master key recorded before key ids (migration 0012)"
            raise ConfigurationError(
                f"nothing changed: a key of {table} wrapped under {owner} does not open with"
                f" the master keys configured here ({', '.join(masters.ids)}): {exc}"
            ) from None
    return opened


def _tenants(conn: Any) -> list[str]:
    return sorted({log.tenant for log in list_logs(conn)})


def _actor_id(actor: dict[str, Any]) -> str:
    return str(actor.get("id", "unknown"))
