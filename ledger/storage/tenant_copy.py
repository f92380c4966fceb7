"""Copying and comparing one tenant's rows between two clusters: the SQL of moving a tenant
(``ledger.services.admin.move`` orchestrates it: copy, verify, switch, verify).

Every tenant table (``TENANT_TABLES``) in foreign-key order, how its rows are selected for a
tenant and compared (in key order, printed alike on both clusters: ``SAME_TEXT``), the locks a
move takes, and the Merkle check of a copied log's entries against its signed checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

from ledger.core.merkle import frontier_extend, frontier_root, leaf_hash
from ledger.domain import MAIN_CLUSTER
from ledger.errors import (
    ConfigurationError,
    Conflict,
    IntegrityFailure,
)
from ledger.storage.checkpoints import latest_checkpoint
from ledger.storage.console import lock_index
from ledger.storage.db import driver_connection
from ledger.storage.entries import chunk_rows, first_seq_at_or_beyond
from ledger.storage.placement import (
    ID_TABLES,
)

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


@dataclass
class TableCount:
    inserted: int = 0
    updated: int = 0
    compared: int = 0
    digest: str = ""


def snapshot_xmin_of(conn: Connection) -> int:
    """The oldest transaction still running when this transaction's snapshot was taken, as a
    32-bit xid (what a row's ``xmin`` holds): every row written after the snapshot was written
    by it or a later one."""
    xmin = conn.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")).scalar_one()
    return int(xmin) % 2**32


def same_text(conn: Connection) -> None:
    for statement in SAME_TEXT:
        conn.exec_driver_sql(statement)


def tenant_heads(conn: Connection, tenant: str) -> tuple[list[str], dict[str, int]]:
    rows = conn.execute(
        text(
            "SELECT h.log_id, h.size FROM log_heads h JOIN logs l ON l.id = h.log_id"
            " WHERE l.tenant = :t ORDER BY h.log_id"
        ),
        {"t": tenant},
    ).all()
    return [str(r[0]) for r in rows], {str(r[0]): int(r[1]) for r in rows}


def lock_tenant(conn: Connection, tenant: str) -> list[str]:
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


def check_columns(source: Connection, target: Connection) -> None:
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


def claim_ids(
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


def tenant_rows_where(
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


class Copier:
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


def fold_frontier(
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


def check_root(conn: Connection, log_id: str, start: int, frontier: list[bytes]) -> int:
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
    frontier = fold_frontier(conn, log_id, start, checkpoint.size, frontier)
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


def tenant_fences(conn: Connection, tenant: str) -> dict[str, str | None]:
    """Each of the tenant's logs on this cluster, by id, with the cluster its head is fenced
    to (``moved_to``; None: live here)."""
    rows = conn.execute(
        text(
            "SELECT h.log_id, h.moved_to FROM log_heads h JOIN logs l ON l.id = h.log_id"
            " WHERE l.tenant = :t ORDER BY h.log_id"
        ),
        {"t": tenant},
    )
    return {str(log_id): moved_to for log_id, moved_to in rows}


def logs_of_tenant(conn: Connection, tenant: str, *, also: Sequence[str] = ()) -> list[str]:
    """The ids of the tenant's logs on this cluster (and of any of ``also`` it holds), by id."""
    rows = conn.execute(
        text("SELECT id FROM logs WHERE id = ANY(:ids) OR tenant = :t ORDER BY id"),
        {"ids": list(also), "t": tenant},
    )
    return [str(log_id) for (log_id,) in rows]


def tenants_by_cluster(directory: Connection) -> list[tuple[str, str, int]]:
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


def delete_tenant_rows(conn: Connection, logs: Sequence[str]) -> dict[str, int]:
    """Delete every row of ``logs`` from the tenant tables, referencing rows first, and return
    the count per table. The append-only triggers forbid DELETE even for the owner, so this
    unit of work disables them, deletes, and enables them again (``ALWAYS``) before it commits
    (holding the tables locked meanwhile). Only for a copy a move left behind
    (``ledger.services.admin.move.drop_copy`` checks that it is one)."""
    pg = driver_connection(conn)
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
    deleted: dict[str, int] = {}
    for table in reversed(TENANT_TABLES):  # referencing rows first
        deleted[table.name] = pg.execute(
            sql.SQL("DELETE FROM {} t WHERE {}").format(
                sql.Identifier(table.name), tenant_rows_where(table, logs)
            )
        ).rowcount
    for table_name, trigger in guards:
        pg.execute(
            sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(
                sql.Identifier(table_name), sql.Identifier(trigger)
            )
        )
    return deleted
