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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from ledger.domain import MAIN_CLUSTER
from ledger.errors import (
    ConfigurationError,
    InvalidRequest,
    NotFound,
)
from ledger.services.system_log import system_log_id
from ledger.storage.db import driver_connection, read_only, schema_is_current, unit_of_work
from ledger.storage.logs import find_log
from ledger.storage.placement import (
    cluster_of_tenant,
    fence_moved_logs,
    lock_placement,
    logs_held,
    place_log,
    place_tenant,
    switch_tenant,
)
from ledger.storage.tenant_copy import (
    TENANT_TABLES,
    Copier,
    TableCount,
    check_columns,
    check_root,
    claim_ids,
    delete_tenant_rows,
    fold_frontier,
    lock_tenant,
    logs_of_tenant,
    same_text,
    snapshot_xmin_of,
    tenant_fences,
    tenant_heads,
    tenant_rows_where,
    tenants_by_cluster,
)

if TYPE_CHECKING:
    from ledger.services.verification.job import Alerts, JobOutcome
    from ledger.services.verification.state import VerifierStateStore
    from ledger.storage.keystore import DataKeyStore

Say = Callable[[str], None]
"""Where progress goes (the CLI: stderr)."""


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
        fences = tenant_fences(s, tenant)
    if not fences:
        raise NotFound(f"cluster {source!r} holds no log of tenant {tenant!r}")
    logs = tuple(fences)
    with unit_of_work(target_engine) as b:
        on_target = tuple(logs_of_tenant(b, tenant, also=logs))
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
    return tenants_by_cluster(directory)


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
        same_text(b)
        copier = Copier(driver_connection(b), counts, digests)
        copied: dict[str, int] = {}  # each log's entries copied and verified so far
        since: int | None = None  # the last pass's snapshot xmin: rows changed after it
        frontiers: dict[str, list[bytes]] = {}
        for online_pass in range(MAX_ONLINE_PASSES):
            started = time.monotonic()
            with unit_of_work(source) as online:
                read_only(online, repeatable=True)
                same_text(online)
                logs, sizes = tenant_heads(online, plan.tenant)
                if online_pass == 0:
                    check_columns(online, b)
                claim_ids(online, b, logs, since)
                src = driver_connection(online)
                for table in TENANT_TABLES:
                    copier.copy(src, table, tenant_rows_where(table, logs, copied, sizes, since))
                report.seconds["online_copy"] += time.monotonic() - started
                if before_verify is not None and online_pass == 0:
                    before_verify(b)
                checked = time.monotonic()
                for table in TENANT_TABLES:
                    copier.compare(
                        src,
                        table,
                        tenant_rows_where(table, logs, copied, sizes, since),
                        staged_only=since is not None,
                    )
                snapshot_xmin = snapshot_xmin_of(online)
            for log in logs:
                frontiers[log] = fold_frontier(
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
        same_text(locked)
        locked_logs = lock_tenant(locked, plan.tenant)
        paused = time.monotonic()
        report.seconds["lock_wait"] = paused - t2
        new_logs = sorted(set(locked_logs) - set(logs))
        if new_logs:
            say(f"log(s) created during the copy: {', '.join(new_logs)} (copied whole)")
        logs = locked_logs
        claim_ids(locked, b, logs, since)
        src = driver_connection(locked)
        for table in TENANT_TABLES:
            before = counts[table.name].inserted + counts[table.name].updated
            copier.copy(src, table, tenant_rows_where(table, logs, copied, since=since))
            moved = counts[table.name].inserted + counts[table.name].updated - before
            if moved:
                say(f"under the lock: {table.name} {moved} rows")
        report.seconds["locked_copy"] = time.monotonic() - paused
        checked = time.monotonic()
        for table in TENANT_TABLES:
            copier.compare(
                src,
                table,
                tenant_rows_where(table, logs, copied, since=since),
                staged_only=since is not None,
            )
        for log in logs:
            report.entries[log] = check_root(b, log, copied.get(log, 0), frontiers.get(log, []))
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


def _switch(main: Engine, tenant: str, logs: Sequence[str], target: str) -> None:
    """Point the placement at ``target`` (placing a tenant that never was)."""
    with unit_of_work(main) as directory:
        lock_placement(directory)
        if cluster_of_tenant(directory, tenant) is None:
            place_tenant(directory, tenant, target)
        else:
            switch_tenant(directory, tenant, target)
        for log_id in logs:
            place_log(directory, log_id, tenant, target)


# --- the Merkle roots --------------------------------------------------------------------------


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
        logs = logs_of_tenant(copy, tenant)
    if not logs:
        raise NotFound(f"cluster {cluster!r} holds no copy of tenant {tenant!r}")
    with unit_of_work(engine_of(live)) as holder:
        missing = sorted(set(logs) - logs_held(holder, logs))
    if missing:
        raise ConfigurationError(
            f"cluster {live!r}, where the placement puts tenant {tenant!r}, does not hold "
            f"{', '.join(missing)} live: the copy on {cluster!r} may be the only one; not deleted"
        )
    with unit_of_work(engine_of(cluster)) as copy:
        return delete_tenant_rows(copy, logs)


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
