"""The placement table (migration 0014): which cluster holds each log, kept on the main cluster.

The tenant is the unit of placement (its logs and system log share transactions); a log with
no row is on the main cluster."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from ledger.domain import MAIN_CLUSTER


@dataclass(frozen=True)
class LogPlacement:
    log_id: str
    tenant: str
    cluster: str


def cluster_of_log(conn: Connection, log_id: str) -> str:
    """The cluster holding ``log_id`` (the main one when the log was never placed)."""
    cluster = conn.execute(
        text("SELECT cluster FROM log_placements WHERE log_id = :id"), {"id": log_id}
    ).scalar_one_or_none()
    return cluster or MAIN_CLUSTER


def cluster_of_tenant(conn: Connection, tenant: str) -> str | None:
    """The cluster the tenant was placed on, None if it never was."""
    cluster: str | None = conn.execute(
        text("SELECT cluster FROM tenant_placements WHERE tenant = :t"), {"t": tenant}
    ).scalar_one_or_none()
    return cluster


def tenants_per_cluster(conn: Connection) -> dict[str, int]:
    """How many tenants each cluster holds (by the placement table)."""
    rows = conn.execute(text("SELECT cluster, count(*) FROM tenant_placements GROUP BY cluster"))
    return {cluster: int(count) for cluster, count in rows}


def unplaced_tenants(conn: Connection) -> int:
    """How many tenants have logs on this (the main) cluster and no placement row: those from
    before placement existed, which the rule counts as the main cluster's."""
    count = conn.execute(
        text(
            "SELECT count(DISTINCT l.tenant) FROM logs l"
            " WHERE NOT EXISTS (SELECT FROM tenant_placements p WHERE p.tenant = l.tenant)"
        )
    ).scalar_one()
    return int(count)


def is_placed(conn: Connection, log_id: str) -> bool:
    """Whether the placement table has a row for ``log_id``."""
    found = conn.execute(
        text("SELECT 1 FROM log_placements WHERE log_id = :id"), {"id": log_id}
    ).scalar_one_or_none()
    return found is not None


def placements(conn: Connection, *, cluster: str | None = None) -> list[LogPlacement]:
    """Every placed log (of one cluster, with ``cluster``), by log id."""
    rows = conn.execute(
        text(
            "SELECT log_id, tenant, cluster FROM log_placements"
            " WHERE CAST(:cluster AS text) IS NULL OR cluster = :cluster ORDER BY log_id"
        ),
        {"cluster": cluster},
    )
    return [LogPlacement(*row) for row in rows]


def lock_placement(conn: Connection) -> None:
    """One placement decision at a time (this transaction's, on the main cluster): two tenants
    placed at once each see the other's row."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('ledger.placement'))"))


def place_tenant(conn: Connection, tenant: str, cluster: str) -> None:
    """Record the tenant's cluster (no-op if it is already placed there; a tenant placed
    elsewhere is an integrity error: moving is ``switch_tenant``)."""
    conn.execute(
        text(
            "INSERT INTO tenant_placements (tenant, cluster) VALUES (:t, :c)"
            " ON CONFLICT (tenant, cluster) DO NOTHING"
        ),
        {"t": tenant, "c": cluster},
    )


def place_log(conn: Connection, log_id: str, tenant: str, cluster: str) -> None:
    """Record that ``cluster`` holds ``log_id`` (its tenant must be placed there)."""
    conn.execute(
        text(
            "INSERT INTO log_placements (log_id, tenant, cluster) VALUES (:id, :t, :c)"
            " ON CONFLICT (log_id) DO NOTHING"
        ),
        {"id": log_id, "t": tenant, "c": cluster},
    )


def switch_tenant(conn: Connection, tenant: str, cluster: str) -> None:
    """Point the tenant and (by the foreign key's cascade) all its logs at ``cluster``."""
    conn.execute(
        text("UPDATE tenant_placements SET cluster = :c, placed_at = now() WHERE tenant = :t"),
        {"t": tenant, "c": cluster},
    )


def logs_held(conn: Connection, log_ids: list[str]) -> set[str]:
    """Which of ``log_ids`` this cluster holds as live logs (not as a copy a move left behind),
    whatever tenant's: the start-up check of the placement (``ledger_logs_held``, 0014)."""
    rows = conn.execute(text("SELECT ledger_logs_held(:ids)"), {"ids": log_ids})
    return {log_id for (log_id,) in rows}


def fence_moved_logs(conn: Connection, log_ids: list[str], cluster: str) -> None:
    """On the cluster a tenant leaves: its logs' heads name ``cluster``, and the sequencer
    appends nothing more to them here (it reads ``moved_to`` under the log's lock)."""
    conn.execute(
        text("UPDATE log_heads SET moved_to = :c WHERE log_id = ANY (:ids)"),
        {"c": cluster, "ids": log_ids},
    )


ID_TABLES = ("signing_keys", "credentials", "data_keys", "privacy_requests", "writer_keys")
"""The tenant tables with a serial id. Their ids are named inside signed records (an erasure
record's data key ids, a writer key's credential), so a tenant's move keeps them, and two
clusters must never hand out the same one: each cluster numbers from its own block."""

ID_BLOCK = 100_000_000
"""The ids of one cluster's block: block ``k`` hands out ``k * ID_BLOCK + 1`` onwards (the main
cluster block 0). Three of the id columns are 32-bit: 21 blocks fit."""


def id_block(conn: Connection) -> int | None:
    """The block this cluster's ids come from (``ID_BLOCK``), None if it has handed out none."""
    highest = conn.execute(
        text(
            "SELECT max(last_value) FROM pg_sequences"
            " WHERE schemaname = current_schema() AND sequencename = ANY (:names)"
        ),
        {"names": [f"{table}_id_seq" for table in ID_TABLES]},
    ).scalar_one_or_none()
    return None if highest is None else int(highest) // ID_BLOCK


def claim_id_block(conn: Connection, block: int) -> None:
    """Make this cluster hand out ids from ``block`` on (a cluster that has handed out none)."""
    for table in ID_TABLES:
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :n)"),
            {"t": table, "n": block * ID_BLOCK},
        )
