"""Moving a tenant to another cluster (issue 17, item 4): copy, verify, switch, verify.

The tenant is the unit of placement (migration 0014), so the tenant moves: its logs, its
system log and every row of theirs in the tenant tables (``TENANT_TABLES``). The global
tables (``alembic_version``, ``master_key_changes``, ``wrapped_secrets``, the placement) stay.

**The shape.** One transaction on the target cluster ``B`` stays open from the first row copied
to the end of verification, so a move that fails leaves nothing on ``B``:

1. *Online passes* on the source ``S``: each one repeatable-read snapshot, no lock; the first
   streams every tenant row (binary ``COPY``) into ``B``, the next ones only what changed
   since the pass before (entries, payloads, tree nodes and checkpoints by each log's size;
   rows changed in place, such as a revocation, a destroyed data key or a head, by their
   ``xmin``: ``_changed_since``), until a pass takes under ``CATCH_UP_SECONDS``. Each pass
   compares what it copied with ``S`` and folds each log's Merkle frontier over the new
   entries then and there, before any writer waits.
2. *Locked pass*: the tenant's log heads on ``S`` are locked (``FOR UPDATE``: the sequencer's
   lock, which every write of the tenant takes: its appends, and in the same transaction its
   credentials, erasures, writer keys, privacy requests). Writers of this tenant wait; other
   tenants do not. What changed since the last pass is copied, so the pause is about the
   writes of the last pass's duration, not the tenant's size.
3. *Verify*, in ``B``'s open transaction, pass by pass: every table's tenant rows on ``B`` equal
   ``S``'s, compared row by row in key order (the digest per table is the SHA-256 of the rows
   compared), and each log's Merkle root recomputed from ``B``'s entries equals its latest
   signed checkpoint's. Any difference: everything rolls back (``S`` unchanged, ``B`` without
   the rows), and the error names the table and the first row that differs (exit 1).
4. *Switch*: ``B`` commits; ``S``'s heads of the tenant's logs are fenced (``moved_to``: its
   sequencer refuses them, ``LogMoved``, 503) and ``S`` commits, which ends the pause; then the
   placement on the main cluster names ``B``. Servers route by the new placement within
   ``PLACEMENT_CACHE_SECONDS``; until then a write that reaches ``S`` gets a 503 to retry.
5. The real verifier then runs on ``B`` (``verify_moved``: ``ledger verify --tenant T --full``).

**Ids are kept, never remapped.** The serial ids of credentials, data keys and privacy
requests are named inside signed records: an erasure record lists the data key ids it destroyed
(the verifier accepts an unreadable payload only if its key id is listed), a writer key's record
names its credential, and every writer-signed entry names the writer's credential, which the
verifier matches against that record. New ids on ``B`` would make ``B``'s copy fail
verification (erased payloads) and every writer-signed entry after the move fail too. So a row
keeps its id on ``B``: the move checks that ``B`` uses none of them for another tenant (else it
refuses, nothing changed, naming the ids: ``Conflict``) and advances ``B``'s sequences past
them, so ``B`` never hands them out again. Clusters never collide when each numbers from a
block of its own, which ``ledger db upgrade`` gives every new cluster
(``ledger.storage.placement.ID_BLOCK``, ``docs/moving-a-tenant.md``).

**Crash points and re-runs** (``plan_move`` decides what a re-run does):

- before ``B`` commits: nothing happened (``B`` rolled back; ``S``'s lock went with its
  connection). Run again.
- after ``B`` commits, before ``S``'s fence commits: ``B`` holds a copy, ``S`` is still live and
  takes writes, so the copy goes stale. A re-run says so and brings that copy up to date (insert
  what is missing, update what changed, then the same row-by-row verification: a copy that is
  not a prefix of ``S`` is refused). To abandon the move instead, clear the copy (the doc).
- after the fence, before the switch: ``S`` refuses the tenant's writes (503) until a re-run,
  which finds ``S`` fenced to ``B`` and ``B`` holding every log, and only switches.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine, text

from ledger.core.merkle import frontier_extend, frontier_root, leaf_hash
from ledger.domain import MAIN_CLUSTER
from ledger.errors import (
    ConfigurationError,
    Conflict,
    IntegrityFailure,
    InvalidRequest,
    NotFound,
)
from ledger.services.system_log import system_log_id
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.console import lock_index
from ledger.storage.db import driver_connection, read_only, schema_is_current, unit_of_work
from ledger.storage.entries import chunk_rows, first_seq_at_or_beyond
from ledger.storage.logs import find_log
from ledger.storage.placement import (
    ID_TABLES,
    cluster_of_tenant,
    fence_moved_logs,
    logs_held,
    place_log,
    place_tenant,
    switch_tenant,
)

if TYPE_CHECKING:
    from ledger.services.verification.job import Alerts, JobOutcome
    from ledger.services.verification.state import VerifierStateStore
    from ledger.storage.keystore import DataKeyStore

Say = Callable[[str], None]
"""Where progress goes (the CLI: stderr)."""

OF_TENANT_LOGS = "log_id = ANY({logs})"


@dataclass(frozen=True)
class TenantTable:
    """A table whose rows belong to a tenant, as the move copies and compares it."""

    name: str
    key: tuple[str, ...]
    """Its primary key: rows are compared in this order."""
    mutable: bool = False
    """Rows change in place (a revocation, a destroyed or re-wrapped key, a head): the locked
    pass brings them to their current state. The others only gain rows."""
    grows: str | None = None
    """For the large append-only tables, how a log of ``n`` entries bounds its rows
    (``seq``, checkpoint ``size``, tree ``node``): the rows it had are compared before the
    lock, and only the others copied under it (``_had``)."""
    of_tenant: str = OF_TENANT_LOGS


TENANT_TABLES: tuple[TenantTable, ...] = (
    # In foreign-key order: a row's references are copied before it.
    TenantTable("logs", ("id",), mutable=True, of_tenant="id = ANY({logs})"),
    TenantTable("log_heads", ("log_id",), mutable=True),
    TenantTable("signing_keys", ("id",), mutable=True),
    TenantTable("credentials", ("id",), mutable=True),
    TenantTable("data_keys", ("id",), mutable=True),
    TenantTable("privacy_requests", ("id",)),
    TenantTable(
        "privacy_approvals",
        ("request_id",),
        of_tenant="request_id IN (SELECT id FROM privacy_requests WHERE log_id = ANY({logs}))",
    ),
    TenantTable("writer_keys", ("id",), mutable=True),
    TenantTable("key_rotations", ("log_id", "new_key_id")),
    TenantTable("entries", ("log_id", "seq"), grows="seq"),
    TenantTable("payloads", ("log_id", "seq"), grows="seq"),
    TenantTable("tree_nodes", ("log_id", "level", "idx"), grows="node"),
    TenantTable("checkpoints", ("log_id", "size"), grows="size"),
    TenantTable("anchorings", ("log_id", "sink", "size")),
    TenantTable("witness_cosignatures", ("log_id", "witness", "size")),
    # The console's index (0013) is derived, but copied with the rest (under the index's own
    # lock), so searches on B answer at once instead of after a re-index.
    TenantTable("console_index_heads", ("log_id",), mutable=True),
    TenantTable("console_conversations", ("log_id", "conversation_id"), mutable=True),
    TenantTable("console_daily", ("log_id", "day"), mutable=True),
)


SAME_TEXT = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL bytea_output = 'hex'",
    "SET LOCAL extra_float_digits = 3",
)
"""Both clusters print rows alike for the comparison, whatever their servers' defaults."""

MERKLE_CHUNK = 10_000

MAX_ONLINE_PASSES = 5
CATCH_UP_SECONDS = 0.25
"""Online passes repeat (up to ``MAX_ONLINE_PASSES``) until one takes less than this: the
tenant's writers then wait for about that much arrivals' copy and check, not the first pass's."""


@dataclass(frozen=True)
class MovePlan:
    """What ``move_tenant`` will do, decided by ``plan_move`` before anything changes."""

    tenant: str
    source: str
    target: str
    logs: tuple[str, ...]
    only_switch: bool = False
    """Resuming: ``S`` is fenced to ``B``, which holds every log; only the placement is left."""
    copy_on_target: tuple[str, ...] = ()
    """The tenant's logs ``B`` already holds (a move that committed there and stopped before
    the fence, or a copy left by an earlier move away from ``B``): brought up to date."""


@dataclass
class TableCount:
    inserted: int = 0
    updated: int = 0
    compared: int = 0
    digest: str = ""


@dataclass
class MoveReport:
    tenant: str
    source: str
    target: str
    logs: list[str]
    only_switch: bool = False
    tables: dict[str, TableCount] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)
    """Each log's size (latest signed checkpoint) as verified on the target."""
    seconds: dict[str, float] = field(default_factory=dict)
    """``online_copy``, ``lock_wait``, ``locked_copy``, ``verify`` (both parts), ``pause`` (the
    tenant's writers waited: lock taken to source committed), ``switch``, ``total``."""

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "from": self.source,
            "to": self.target,
            "logs": self.logs,
            "only_switch": self.only_switch,
            "tables": {
                name: {
                    "inserted": c.inserted,
                    "updated": c.updated,
                    "compared": c.compared,
                    "sha256": c.digest,
                }
                for name, c in self.tables.items()
            },
            "entries": self.entries,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


# --- 1. preconditions --------------------------------------------------------------------------


def plan_move(
    main: Engine,
    engine_of: Callable[[str], Engine],
    clusters: Sequence[str],
    tenant: str,
    target: str,
) -> MovePlan:
    """Check everything that can be checked before a row moves; ``ConfigurationError``,
    ``NotFound``, ``InvalidRequest`` (exit 2) naming what is wrong, with nothing changed."""
    if target not in clusters:
        raise ConfigurationError(
            f"no cluster {target!r}: configured are {', '.join(clusters)} (LEDGER_CLUSTERS)"
        )
    source = source_cluster(main, tenant)
    if source not in clusters:
        raise ConfigurationError(
            f"tenant {tenant!r} is on cluster {source!r}, which is not configured here "
            "(LEDGER_CLUSTERS)"
        )
    if source == target:
        raise InvalidRequest(f"tenant {tenant!r} is on cluster {target!r} already")
    source_engine, target_engine = engine_of(source), engine_of(target)
    if not schema_is_current(_url(target_engine)):
        raise ConfigurationError(
            f"cluster {target!r} is not at the newest migration: run `ledger db upgrade` first"
        )
    with unit_of_work(source_engine) as s:
        fences: dict[str, str | None] = dict(
            s.execute(
                text(
                    "SELECT h.log_id, h.moved_to FROM log_heads h JOIN logs l ON l.id = h.log_id"
                    " WHERE l.tenant = :t ORDER BY h.log_id"
                ),
                {"t": tenant},
            ).all()
        )
    if not fences:
        raise NotFound(f"cluster {source!r} holds no log of tenant {tenant!r}")
    logs = tuple(fences)
    with unit_of_work(target_engine) as b:
        on_target = tuple(
            b.execute(
                text("SELECT id FROM logs WHERE id = ANY(:ids) OR tenant = :t ORDER BY id"),
                {"ids": list(logs), "t": tenant},
            ).scalars()
        )
        held = logs_held(b, list(logs))
    fenced_to = set(fences.values())
    if fenced_to == {target}:
        if held == set(logs):
            return MovePlan(tenant, source, target, logs, only_switch=True)
        missing = ", ".join(sorted(set(logs) - held))
        raise ConfigurationError(
            f"cluster {source!r} is fenced to {target!r} for tenant {tenant!r}, but {target!r} "
            f"does not hold {missing} live: restore {target!r} from its backup, or ask for help "
            "before changing anything (docs/moving-a-tenant.md)"
        )
    if fenced_to != {None}:
        fenced = sorted(log for log, to in fences.items() if to is not None)
        raise ConfigurationError(
            f"log(s) {', '.join(fenced)} of tenant {tenant!r} on cluster {source!r} are fenced "
            f"to {', '.join(sorted({str(fences[log]) for log in fenced}))}: a move elsewhere "
            "did not finish (finish it with `ledger tenants move` to that cluster)"
        )
    strangers = sorted(set(on_target) - set(logs))
    if strangers:
        raise ConfigurationError(
            f"cluster {target!r} holds log(s) {', '.join(strangers)} of tenant {tenant!r} that "
            f"cluster {source!r} does not: refusing to merge them"
        )
    return MovePlan(tenant, source, target, logs, copy_on_target=on_target)


def source_cluster(main: Engine, tenant: str) -> str:
    """The cluster holding ``tenant`` by the placement (an unplaced tenant with logs on the main
    cluster is on main); ``NotFound`` for a tenant nobody holds."""
    with unit_of_work(main) as directory:
        placed = cluster_of_tenant(directory, tenant)
        if placed is not None:
            return placed
        if find_log(directory, system_log_id(tenant)) is not None:
            return MAIN_CLUSTER
    raise NotFound(f"no tenant {tenant!r} (not placed, and no system log on the main cluster)")


def list_tenants(directory: Connection) -> list[tuple[str, str, int]]:
    """``(tenant, cluster, logs)`` of every tenant, by name, from the main cluster: the placed
    ones by the placement, the others (from before placement) on the main cluster."""
    rows = directory.execute(
        text(
            "SELECT p.tenant, p.cluster, count(l.log_id) FROM tenant_placements p"
            " LEFT JOIN log_placements l ON l.tenant = p.tenant GROUP BY p.tenant, p.cluster"
            " UNION ALL"
            " SELECT g.tenant, :main, count(*) FROM logs g WHERE NOT EXISTS"
            "   (SELECT FROM tenant_placements p WHERE p.tenant = g.tenant) GROUP BY g.tenant"
            " ORDER BY 1"
        ),
        {"main": MAIN_CLUSTER},
    )
    return [(str(t), str(c), int(n)) for t, c, n in rows]


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


# --- 2-4. copy, verify, switch -------------------------------------------------------------------


def move_tenant(
    plan: MovePlan,
    *,
    main: Engine,
    source: Engine,
    target: Engine,
    say: Say,
    before_verify: Callable[[Connection], None] | None = None,
) -> MoveReport:
    """Carry out ``plan`` (the module's docstring). ``before_verify``: a test's hook, run in
    ``B``'s transaction between the first pass's copy and its verification (to tamper with it).
    ``IntegrityFailure`` (exit 1) if the copy differs, with everything rolled back."""
    report = MoveReport(plan.tenant, plan.source, plan.target, list(plan.logs))
    started = time.monotonic()
    if plan.only_switch:
        say(
            f"cluster {plan.source} is fenced already and {plan.target} holds all "
            f"{len(plan.logs)} log(s): only the switch is left"
        )
        report.only_switch = True
    else:
        if plan.copy_on_target:
            say(
                f"cluster {plan.target} already holds a copy of {len(plan.copy_on_target)} log(s) "
                f"of tenant {plan.tenant} (a move that committed there but never fenced "
                f"{plan.source}, or a tenant moving back): {plan.source} is still the live "
                "copy; this run brings that copy up to date and verifies it row by row (to "
                "abandon the move instead, clear it: docs/moving-a-tenant.md)"
            )
        logs = _copy_verify_fence(
            plan, source=source, target=target, say=say, before_verify=before_verify, report=report
        )
        report.logs = logs
    switched = time.monotonic()
    _switch(main, plan.tenant, report.logs, plan.target)
    report.seconds["switch"] = time.monotonic() - switched
    report.seconds["total"] = time.monotonic() - started
    say(f"placement: tenant {plan.tenant} is on cluster {plan.target}")
    return report


def _copy_verify_fence(
    plan: MovePlan,
    *,
    source: Engine,
    target: Engine,
    say: Say,
    before_verify: Callable[[Connection], None] | None,
    report: MoveReport,
) -> list[str]:
    counts = report.tables = {t.name: TableCount() for t in TENANT_TABLES}
    digests = {t.name: hashlib.sha256() for t in TENANT_TABLES}
    report.seconds.update(online_copy=0.0, verify=0.0)
    # ``locked`` is opened first and committed last: the source's locked transaction outlives
    # B's, so B commits while the tenant's writers still wait, and the fence commits after B's
    # rows. ``horizon`` holds a snapshot from before the first pass to the end, so no row
    # written since can be frozen (which would hide its xmin from ``_changed_since``).
    with (
        unit_of_work(source) as locked,
        unit_of_work(target) as b,
        unit_of_work(source) as horizon,
    ):
        read_only(horizon, repeatable=True)
        horizon.exec_driver_sql("SELECT 1")
        _same_text(b)
        copier = _Copier(driver_connection(b), counts, digests)
        copied: dict[str, int] = {}  # each log's entries copied and verified so far
        since: int | None = None  # the last pass's snapshot xmin: rows changed after it
        frontiers: dict[str, list[bytes]] = {}
        for online_pass in range(MAX_ONLINE_PASSES):
            started = time.monotonic()
            with unit_of_work(source) as online:
                read_only(online, repeatable=True)
                _same_text(online)
                logs, sizes = _heads(online, plan.tenant)
                if online_pass == 0:
                    _check_columns(online, b)
                _claim_ids(online, b, logs, since)
                src = driver_connection(online)
                for table in TENANT_TABLES:
                    copier.copy(src, table, _where(table, logs, copied, sizes, since))
                report.seconds["online_copy"] += time.monotonic() - started
                if before_verify is not None and online_pass == 0:
                    before_verify(b)
                checked = time.monotonic()
                for table in TENANT_TABLES:
                    copier.compare(
                        src,
                        table,
                        _where(table, logs, copied, sizes, since),
                        staged_only=since is not None,
                    )
                snapshot_xmin = _snapshot_xmin(online)
            for log in logs:
                frontiers[log] = _fold(
                    b, log, copied.get(log, 0), sizes[log], frontiers.get(log, [])
                )
            report.seconds["verify"] += time.monotonic() - checked
            arrived = sum(sizes[log] - copied.get(log, 0) for log in logs)
            copied, since = sizes, snapshot_xmin
            seconds = time.monotonic() - started
            say(
                f"online pass {online_pass + 1}: {arrived} entries copied and verified in "
                f"{seconds:.3f} s (no lock)"
            )
            if seconds < CATCH_UP_SECONDS:
                break  # what arrives meanwhile is little enough to copy under the lock

        t2 = time.monotonic()
        _same_text(locked)
        locked_logs = _lock_tenant(locked, plan.tenant)
        paused = time.monotonic()
        report.seconds["lock_wait"] = paused - t2
        new_logs = sorted(set(locked_logs) - set(logs))
        if new_logs:
            say(f"log(s) created during the copy: {', '.join(new_logs)} (copied whole)")
        logs = locked_logs
        _claim_ids(locked, b, logs, since)
        src = driver_connection(locked)
        for table in TENANT_TABLES:
            before = counts[table.name].inserted + counts[table.name].updated
            copier.copy(src, table, _where(table, logs, copied, since=since))
            moved = counts[table.name].inserted + counts[table.name].updated - before
            if moved:
                say(f"under the lock: {table.name} {moved} rows")
        report.seconds["locked_copy"] = time.monotonic() - paused
        checked = time.monotonic()
        for table in TENANT_TABLES:
            copier.compare(
                src, table, _where(table, logs, copied, since=since), staged_only=since is not None
            )
        for log in logs:
            report.entries[log] = _check_root(b, log, copied.get(log, 0), frontiers.get(log, []))
        report.seconds["verify"] += time.monotonic() - checked
        for name, digest in digests.items():
            counts[name].digest = digest.hexdigest()
        say(f"verified: every table equal, {len(logs)} Merkle root(s) as signed")
        fence_moved_logs(locked, logs, plan.target)
        say(f"cluster {plan.target} committing")
    # B committed (inner block), then the fence with the source (outer block).
    report.seconds["pause"] = time.monotonic() - paused
    say(f"cluster {plan.source} fenced: writes paused {report.seconds['pause']:.3f} s")
    return logs


def _snapshot_xmin(conn: Connection) -> int:
    """The oldest transaction still running when this transaction's snapshot was taken, as a
    32-bit xid (what a row's ``xmin`` holds): every row written after the snapshot was written
    by it or a later one."""
    xmin = conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")).scalar_one()
    return int(xmin) % 2**32


def _switch(main: Engine, tenant: str, logs: Sequence[str], target: str) -> None:
    """Point the placement at ``target`` (placing a tenant that never was)."""
    with unit_of_work(main) as directory:
        directory.execute(text("SELECT pg_advisory_xact_lock(hashtext('ledger.placement'))"))
        if cluster_of_tenant(directory, tenant) is None:
            place_tenant(directory, tenant, target)
        else:
            switch_tenant(directory, tenant, target)
        for log_id in logs:
            place_log(directory, log_id, tenant, target)


def _same_text(conn: Connection) -> None:
    for statement in SAME_TEXT:
        conn.exec_driver_sql(statement)


def _heads(conn: Connection, tenant: str) -> tuple[list[str], dict[str, int]]:
    rows = conn.execute(
        text(
            "SELECT h.log_id, h.size FROM log_heads h JOIN logs l ON l.id = h.log_id"
            " WHERE l.tenant = :t ORDER BY h.log_id"
        ),
        {"t": tenant},
    ).all()
    return [str(r[0]) for r in rows], {str(r[0]): int(r[1]) for r in rows}


def _lock_tenant(conn: Connection, tenant: str) -> list[str]:
    """Lock the tenant's heads (the sequencer's lock) and console indexes; its logs now. A head
    fenced meanwhile means another move got there first."""
    rows = conn.execute(
        text(
            "SELECT h.log_id, h.moved_to FROM log_heads h JOIN logs l ON l.id = h.log_id"
            " WHERE l.tenant = :t ORDER BY h.log_id FOR UPDATE OF h"
        ),
        {"t": tenant},
    ).all()
    fenced = sorted(str(r[0]) for r in rows if r[1] is not None)
    if fenced:
        raise Conflict(f"log(s) {', '.join(fenced)} were fenced by another move meanwhile")
    logs = [str(r[0]) for r in rows]
    for log_id in logs:
        lock_index(conn, log_id)  # the index is copied as of one catch-up, not halfway through
    return logs


def _check_columns(source: Connection, target: Connection) -> None:
    query = text(
        "SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position)"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name = ANY(:t) GROUP BY table_name"
    )
    names = [t.name for t in TENANT_TABLES]
    theirs: dict[str, list[str]] = dict(source.execute(query, {"t": names}).all())
    ours: dict[str, list[str]] = dict(target.execute(query, {"t": names}).all())
    for name in names:
        if theirs.get(name) != ours.get(name):
            raise ConfigurationError(
                f"table {name} has other columns on the two clusters: bring both to the "
                "newest migration (`ledger db upgrade`)"
            )


def _claim_ids(
    source: Connection, target: Connection, logs: Sequence[str], since: int | None
) -> None:
    """Prove the tenant's ids free on the target (those of rows written after the snapshot
    ``since``, if given: the others were proven by an earlier pass), then move its sequences
    past them."""
    collisions: list[str] = []
    found: dict[str, int] = {}
    for table in ID_TABLES:
        newer = "" if since is None else f" AND age(t.xmin) <= age(CAST('{since}' AS xid))"
        ids = list(
            source.execute(
                text(f"SELECT id FROM {table} t WHERE log_id = ANY(:logs){newer}"),
                {"logs": list(logs)},
            ).scalars()
        )
        if not ids:
            continue
        clash = list(
            target.execute(
                text(
                    f"SELECT id FROM {table} WHERE id = ANY(:ids) AND log_id <> ALL(:logs)"
                    " ORDER BY id LIMIT 6"
                ),
                {"ids": ids, "logs": list(logs)},
            ).scalars()
        )
        if clash:
            shown = ", ".join(str(i) for i in clash[:5]) + (" ..." if len(clash) > 5 else "")
            collisions.append(f"{table} {shown}")
        found[table] = max(ids)
    if collisions:
        raise Conflict(
            "the target cluster uses some of the tenant's ids for other tenants' rows ("
            + "; ".join(collisions)
            + "): ids are named in signed records and cannot change, so this tenant cannot "
            "move there (give each cluster its own id range: docs/moving-a-tenant.md)"
        )
    for table, highest in found.items():
        target.execute(
            text(
                "SELECT setval(pg_get_serial_sequence(:t, 'id'),"
                " greatest(:n, (SELECT last_value FROM pg_sequences"
                "   WHERE schemaname = 'public' AND sequencename = :seq)))"
            ),
            {"t": table, "n": highest, "seq": f"{table}_id_seq"},
        )


def _where(
    table: TenantTable,
    logs: Sequence[str],
    after: dict[str, int] | None = None,
    upto: dict[str, int] | None = None,
    since: int | None = None,
) -> sql.Composable:
    """The tenant's rows of ``table``. Of a growing table, with ``after`` and ``upto`` (entries
    per log), only the rows a log gained from ``after`` to ``upto`` of its entries (no bound
    where a log is absent: a log unseen before starts from nothing); each log's part is a range
    of the primary key, so a pass reads what arrived, not the log. Of the others, with
    ``since`` (a snapshot's xmin), only the rows inserted or changed after that snapshot."""
    if table.grows is None or (after is None and upto is None):
        logs_literal = sql.SQL("CAST({} AS text[])").format(sql.Literal(list(logs)))
        of_tenant = sql.SQL(table.of_tenant).format(logs=logs_literal)
        if table.grows is not None or since is None:
            return of_tenant
        return sql.SQL("({}) AND {}").format(of_tenant, _changed_since(since))
    after, upto = after or {}, upto or {}
    parts = [
        sql.SQL("(log_id = {} AND ({}))").format(
            sql.Literal(log_id), _gained(table.grows, after.get(log_id), upto.get(log_id))
        )
        for log_id in logs
    ]
    return sql.SQL(" OR ").join(parts) if parts else sql.SQL("false")


def _changed_since(xmin: int) -> sql.Composable:
    """Rows whose version was written by a transaction not older than ``xmin``: a superset of
    those written after the snapshot whose xmin it is (``age`` counts back from the next xid,
    modulo 2^32, so a smaller age is a newer writer; frozen rows have the largest age, and
    the move's ``horizon`` snapshot keeps any row written since from being frozen)."""
    return sql.SQL("age(t.xmin) <= age(CAST({} AS xid))").format(sql.Literal(str(xmin)))


def _gained(grows: str, after: int | None, upto: int | None) -> sql.Composable:
    """The rows a log gained growing from ``after`` entries to ``upto`` (None: unbounded)."""
    bounds: list[sql.Composable] = []
    if grows in ("seq", "size"):
        # A checkpoint of size s belongs with the entries [0, s); the size-0 one with the first.
        low, high = ("seq >= {}", "seq < {}") if grows == "seq" else ("size > {}", "size <= {}")
        if after is not None:
            bounds.append(sql.SQL(low).format(sql.Literal(after)))
        if upto is not None:
            bounds.append(sql.SQL(high).format(sql.Literal(upto)))
        return sql.SQL(" AND ").join(bounds) if bounds else sql.SQL("true")
    # Tree nodes: node (level, idx) covers leaves [idx << level, (idx + 1) << level), so a
    # tree of n leaves holds at level k exactly the nodes idx < n >> k: one range per level.
    top = max(after or 0, upto or 0).bit_length()
    for k in range(top + 1):
        level = [sql.SQL("level = {}").format(sql.Literal(k))]
        if after is not None:
            level.append(sql.SQL("idx >= {}").format(sql.Literal(after >> k)))
        if upto is not None:
            level.append(sql.SQL("idx < {}").format(sql.Literal(upto >> k)))
        bounds.append(sql.SQL("({})").format(sql.SQL(" AND ").join(level)))
    if upto is None:
        bounds.append(sql.SQL("level > {}").format(sql.Literal(top)))
    return sql.SQL(" OR ").join(bounds)


class _Copier:
    """Copies rows from a source connection into the target's transaction and compares them."""

    def __init__(
        self,
        target: psycopg.Connection[Any],
        counts: dict[str, TableCount],
        digests: dict[str, Any],
    ) -> None:
        self.target = target
        self.counts = counts
        self.digests = digests
        self.columns: dict[str, list[str]] = {}

    def _columns(self, table: TenantTable) -> list[str]:
        if table.name not in self.columns:
            cur = self.target.execute(
                "SELECT column_name::text FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                (table.name,),
            )
            rest = [str(r[0]) for r in cur.fetchall() if r[0] not in table.key]
            self.columns[table.name] = [*table.key, *rest]
            self.target.execute(
                sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
                    sql.Identifier(f"move_{table.name}"), sql.Identifier(table.name)
                )
            )
        return self.columns[table.name]

    def copy(self, source: psycopg.Connection[Any], table: TenantTable, where: Any) -> None:
        """Stream the rows ``where`` selects into the target: those it lacks are inserted, and
        (of a mutable table) those that differ are updated to the source's."""
        columns = self._columns(table)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        staging = sql.Identifier(f"move_{table.name}")
        name = sql.Identifier(table.name)
        # A pass stages a few rows: DELETE is cheaper than TRUNCATE's new file for them.
        self.target.execute(sql.SQL("DELETE FROM {}").format(staging))
        out = sql.SQL("COPY (SELECT {} FROM {} t WHERE {}) TO STDOUT (FORMAT BINARY)").format(
            cols, name, where
        )
        into = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(staging, cols)
        with source.cursor().copy(out) as reader, self.target.cursor().copy(into) as writer:
            for block in reader:
                writer.write(block)
        same_key = sql.SQL(" AND ").join(
            sql.SQL("t.{0} = s.{0}").format(sql.Identifier(k)) for k in table.key
        )
        count = self.counts[table.name]
        try:
            count.inserted += self.target.execute(
                sql.SQL(
                    "INSERT INTO {} ({}) SELECT {} FROM {} s"
                    " WHERE NOT EXISTS (SELECT FROM {} t WHERE {}) ORDER BY {}"
                ).format(
                    name,
                    cols,
                    cols,
                    staging,
                    name,
                    same_key,
                    sql.SQL(", ").join(sql.Identifier(k) for k in table.key),
                )
            ).rowcount
            rest = [c for c in columns if c not in table.key]
            if table.mutable and rest:
                count.updated += self.target.execute(
                    sql.SQL(
                        "UPDATE {} t SET {} FROM {} s WHERE {} AND ({}) IS DISTINCT FROM ({})"
                    ).format(
                        name,
                        sql.SQL(", ").join(
                            sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in rest
                        ),
                        staging,
                        same_key,
                        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in rest),
                        sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in rest),
                    )
                ).rowcount
        except psycopg.errors.IntegrityError as exc:
            raise Conflict(
                f"copying {table.name} to the target cluster: {exc.diag.message_primary} "
                f"({exc.diag.message_detail}): another tenant took that row's key meanwhile"
            ) from exc

    def compare(
        self,
        source: psycopg.Connection[Any],
        table: TenantTable,
        where: Any,
        *,
        staged_only: bool = False,
    ) -> None:
        """The rows ``where`` selects, on both sides, in key order: equal, row by row, else
        ``IntegrityFailure`` naming the first that differs. ``staged_only`` (``where`` selects
        rows changed since a snapshot, by their xmin on the source): on the target, the rows
        with the keys this pass's ``copy`` staged. The source is read again, not the staged
        copy: a row the copy got wrong is compared with the original."""
        columns = self._columns(table)
        key = sql.SQL(", ").join(sql.Identifier(k) for k in table.key)
        query = sql.SQL("COPY (SELECT {} FROM {} t WHERE {} ORDER BY {}) TO STDOUT")
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        name = sql.Identifier(table.name)
        theirs_query = query.format(cols, name, where, key)
        ours_query = theirs_query
        if table.grows is None and staged_only:
            # Rows changed since a pass: the target holds them under the same keys, whatever
            # its xmin says (the copy wrote them all in this one transaction).
            staged = sql.SQL("({}) IN (SELECT {} FROM {})").format(
                key, key, sql.Identifier(f"move_{table.name}")
            )
            ours_query = query.format(cols, name, staged, key)
        digest = self.digests[table.name]
        compared = 0
        with _lines(source, theirs_query) as theirs, _lines(self.target, ours_query) as ours:
            while True:
                a, b = next(theirs, None), next(ours, None)
                if a is None and b is None:
                    break
                if a != b:
                    raise _difference(table, columns, compared + 1, a, b)
                assert a is not None
                digest.update(a)
                compared += 1
        self.counts[table.name].compared += compared


@contextmanager
def _lines(conn: psycopg.Connection[Any], query: sql.Composed) -> Iterator[Iterator[bytes]]:
    """The rows of a text-format ``COPY ... TO STDOUT``, one line each."""
    with conn.cursor().copy(query) as copy:

        def rows() -> Iterator[bytes]:
            pending = b""
            for block in copy:
                pending += bytes(block)
                *complete, pending = pending.split(b"\n")
                yield from complete
            if pending:
                yield pending

        yield rows()


def _difference(
    table: TenantTable, columns: list[str], row: int, theirs: bytes | None, ours: bytes | None
) -> IntegrityFailure:
    if (
        theirs is not None
        and ours is not None
        and _key_text(theirs, table) == _key_text(ours, table)
    ):
        return IntegrityFailure(
            f"the copy of table {table.name} differs from the source in the row with key "
            f"{_key_text(theirs, table)}",
            expected=_columns_differing(theirs, ours, columns),
            found="other values on the target",
        )
    return IntegrityFailure(
        f"the copy of table {table.name} differs from the source at row {row} in key order",
        expected="no row" if theirs is None else f"the row with key {_key_text(theirs, table)}",
        found="no row" if ours is None else f"the row with key {_key_text(ours, table)}",
    )


def _key_text(line: bytes, table: TenantTable) -> str:
    return ", ".join(
        f"{k}={v.decode(errors='replace')}"
        for k, v in zip(table.key, line.split(b"\t"), strict=False)
    )


def _columns_differing(a: bytes, b: bytes, columns: list[str]) -> str:
    theirs, ours = a.split(b"\t"), b.split(b"\t")
    differ = [c for c, x, y in zip(columns, theirs, ours, strict=False) if x != y]
    return f"the source's values of {', '.join(differ) or 'the row'}"


# --- the Merkle roots --------------------------------------------------------------------------


def _fold(
    conn: Connection, log_id: str, start: int, end: int, frontier: list[bytes]
) -> list[bytes]:
    """Fold the leaf hashes of the target's entries ``[start, end)`` into ``frontier``, each
    recomputed from the entry's bytes (and equal to the one stored with it)."""
    size = start
    while size < end:
        chunk = chunk_rows(conn, log_id, size, min(end, size + MERKLE_CHUNK))
        rows = chunk[0] if chunk is not None else []
        leaves: list[bytes] = []
        for seq, stored_leaf, raw, *_ in rows:
            if int(seq) != size + len(leaves):
                raise IntegrityFailure(
                    "the copy lacks an entry", log=log_id, seq=size + len(leaves)
                )
            leaf = leaf_hash(bytes(raw))
            if leaf != bytes(stored_leaf):
                raise IntegrityFailure(
                    "the copied entry's leaf hash is not the hash of its bytes",
                    log=log_id,
                    seq=int(seq),
                )
            leaves.append(leaf)
        if not leaves:
            raise IntegrityFailure("the copy lacks an entry", log=log_id, seq=size)
        frontier, _ = frontier_extend(frontier, size, leaves)
        size += len(leaves)
    return frontier


def _check_root(conn: Connection, log_id: str, start: int, frontier: list[bytes]) -> int:
    """The root of the target's entries equals its latest signed checkpoint's root, and no
    entry lies beyond it; returns that size."""
    checkpoint = latest_checkpoint(conn, log_id)
    if checkpoint.size < start:
        raise IntegrityFailure(
            "the copy's latest checkpoint is older than the entries copied before the lock",
            log=log_id,
            expected=f"size >= {start}",
            found=f"size {checkpoint.size}",
        )
    frontier = _fold(conn, log_id, start, checkpoint.size, frontier)
    root = frontier_root(frontier, checkpoint.size)
    if root != checkpoint.root:
        raise IntegrityFailure(
            "the Merkle root recomputed from the copied entries is not the signed one",
            log=log_id,
            expected=f"size {checkpoint.size} root {checkpoint.root.hex()}",
            found=f"root {bytes(root).hex()}",
        )
    beyond = first_seq_at_or_beyond(conn, "entries", log_id, checkpoint.size)
    if beyond is not None:
        raise IntegrityFailure(
            f"the copy holds an entry beyond its latest signed checkpoint (size {checkpoint.size})",
            log=log_id,
            seq=beyond,
        )
    return checkpoint.size


# --- abandoning a move: a copy left behind --------------------------------------------------


def drop_copy(
    main: Engine, engine_of: Callable[[str], Engine], tenant: str, cluster: str
) -> dict[str, int]:
    """Delete the copy of ``tenant`` that ``cluster`` holds and the placement does not name (a
    move that committed there and was abandoned, or the frozen copy a finished move left), and
    return the rows deleted per table. Refused (nothing changed) unless the placement names
    another cluster and that cluster holds every one of the copy's logs live: what is deleted
    is then a copy, never the tenant.

    The append-only triggers forbid DELETE even for the owner, so this one transaction disables
    them, deletes, and enables them again (``ALWAYS``) before it commits; it holds the tenant
    tables of ``cluster`` locked meanwhile."""
    live = source_cluster(main, tenant)
    if live == cluster:
        raise InvalidRequest(
            f"the placement puts tenant {tenant!r} on cluster {cluster!r}: that is the tenant, "
            "not a copy"
        )
    with unit_of_work(engine_of(cluster)) as copy:
        logs = list(
            copy.execute(
                text("SELECT id FROM logs WHERE tenant = :t ORDER BY id"), {"t": tenant}
            ).scalars()
        )
    if not logs:
        raise NotFound(f"cluster {cluster!r} holds no copy of tenant {tenant!r}")
    with unit_of_work(engine_of(live)) as holder:
        missing = sorted(set(logs) - logs_held(holder, logs))
    if missing:
        raise ConfigurationError(
            f"cluster {live!r}, where the placement puts tenant {tenant!r}, does not hold "
            f"{', '.join(missing)} live: the copy on {cluster!r} may be the only one; not deleted"
        )
    deleted: dict[str, int] = {}
    with unit_of_work(engine_of(cluster)) as copy:
        pg = driver_connection(copy)
        guards = pg.execute(
            "SELECT c.relname::text, t.tgname::text FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE NOT t.tgisinternal AND t.tgenabled = 'A'"
            " AND c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)",
            ([t.name for t in TENANT_TABLES],),
        ).fetchall()
        for table_name, trigger in guards:
            pg.execute(
                sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                    sql.Identifier(table_name), sql.Identifier(trigger)
                )
            )
        for table in reversed(TENANT_TABLES):  # referencing rows first
            deleted[table.name] = pg.execute(
                sql.SQL("DELETE FROM {} t WHERE {}").format(
                    sql.Identifier(table.name), _where(table, logs)
                )
            ).rowcount
        for table_name, trigger in guards:
            pg.execute(
                sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(
                    sql.Identifier(table_name), sql.Identifier(trigger)
                )
            )
    return deleted


# --- 5. verify after ---------------------------------------------------------------------------


def verify_moved(
    target: Engine,
    tenant: str,
    *,
    data_keys: DataKeyStore,
    states: VerifierStateStore,
    anchor_dir: Path | None,
    alerts: Alerts,
    now: Callable[[], datetime],
) -> JobOutcome:
    """``ledger verify --tenant TENANT --full`` against the target cluster: the verifier's
    state and anchors of the tenant's logs (pinned while they were on the source) must hold
    on the target too. Returns the job's outcome (``status`` ``intact`` or not)."""
    from ledger.services.verification.job import Scope, run_verification

    return run_verification(
        target,
        data_keys=data_keys,
        states=states,
        anchor_dir=anchor_dir,
        scope=Scope(tenant=tenant),
        full=True,
        rebaseline=False,
        jobs=1,
        alerts=alerts,
        recorder=None,
        now=now,
    )
