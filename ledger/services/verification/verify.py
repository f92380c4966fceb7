"""Integrity verification of a log: what the scheduled job (``ledger verify``) checks.

The verifier trusts three things the database cannot change: its own state directory (the last
verified checkpoint and the pinned verifier keys, ``verifier_state``), the anchored checkpoints
(``anchor``), and the cryptography. Per log, in this order, stopping at the first failure:

1. **Keys.** Every verifier key the database lists is well formed and named after the log. On
   first sight they are pinned (trust on first use); afterwards every listed key must be pinned
   or certified by a signed rotation statement from a pinned key, and every pinned key must still
   be listed. A replaced key is a failure.
2. **Latest checkpoint** (size ``n``): signed by its key while that key was active; the head row
   agrees with it.
3. **Trusted checkpoints**: the last verified one (state file) and each anchored one (all in
   ``--full``; those at or after the last verified size otherwise) must verify under a pinned
   key, be no larger than ``n`` (else truncation or rollback) and be consistent with the latest
   checkpoint, by an RFC 9162 consistency proof assembled from the stored tree nodes.
4. **Entries** (``verify_range``; a long range split over processes by ``verify_parallel``):
   full from genesis, or incremental from the last verified size, so the cost grows with what
   was appended, not with the log; every new checkpoint's root
   and signature; every new tree node; no stored node and no entry beyond ``n``. A payload
   whose data key is destroyed must be covered by a signed erasure record in the tenant's
   system log (``ErasureRecords``); an incremental run meets only the keys of new entries, so a
   key destroyed for old entries alone is the full run's to find.
5. **Head row**: size, root, frontier and last leaf as recomputed.

Consecutive checkpoints need no pairwise proof: they are all prefixes of the one recomputed
tree. What incremental runs do not re-read (old entries' bytes, old payloads) the full run does;
schedule both (ops/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from ledger.core.checkpoint import Checkpoint, open_checkpoint
from ledger.core.entry import GENESIS_PREV
from ledger.core.merkle import frontier_root, pack_frontier, range_nodes, verify_consistency
from ledger.core.note import parse_note
from ledger.core.rotation import open_rotation, parse_rotation
from ledger.core.signing import NoteVerifier
from ledger.core.types import RootHash
from ledger.domain import LogInfo
from ledger.errors import ConsistencyProofInvalid, CryptoError, IntegrityFailure, NotFound
from ledger.services.anchoring.anchor import AnchoredNote, read_anchors
from ledger.services.verification.erasures import ErasureRecords
from ledger.services.verification.parallel import check_range
from ledger.services.verification.range import (
    MAX_LEVELS,
    Progress,
    RangeResult,
    SigningKey,
    b64,
    check_checkpoint,
)
from ledger.services.verification.state import TrustedState, VerifierStateStore
from ledger.storage.checkpoints import StoredCheckpoint, latest_checkpoint
from ledger.storage.entries import SeqTable, first_seq_at_or_beyond
from ledger.storage.keystore import DataKeyStore, rotation_statements, signing_key_records
from ledger.storage.proofs import consistency_proof, fetch_nodes
from ledger.storage.verification import StoredHead, head_row, tree_node_beyond

REPORT_TEXT_MAX = 4000
"""The longest text of a reported failure (``what``, ``expected``, ``found``, ``message``), as
sent and as the API accepts it (``api.schemas.IntegrityReport``): what is longer (a value read
from tampered data) is cut, marked with an ellipsis."""


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= REPORT_TEXT_MAX:
        return text
    return text[: REPORT_TEXT_MAX - 1] + "\u2026"


@dataclass
class LogReport:
    log: str
    mode: str
    from_size: int = 0
    to_size: int = 0
    entries: int = 0
    checkpoints: int = 0
    anchors: int = 0
    erased_payloads: int = 0
    failure: IntegrityFailure | None = None
    trusted: TrustedState | None = None
    """The state to keep if the log is intact."""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "log": self.log,
            "intact": self.failure is None,
            "mode": self.mode,
            "from_size": self.from_size,
            "to_size": self.to_size,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "anchors": self.anchors,
            "erased_payloads": self.erased_payloads,
            "failure": None,
        }
        if self.failure is not None:
            f = self.failure
            out["failure"] = {
                "log": f.log,
                "seq": f.seq,
                "what": _clip(f.what),
                "expected": _clip(f.expected),
                "found": _clip(f.found),
                "message": _clip(str(f)),
            }
        return out


@dataclass
class VerifyReport:
    logs: list[LogReport] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return all(r.failure is None for r in self.logs)


def verify_logs(
    conn: Connection,
    logs: list[LogInfo],
    *,
    data_keys: DataKeyStore,
    states: VerifierStateStore,
    anchor_dir: Path | None,
    full: bool,
    progress: Progress | None = None,
    jobs: int = 1,
) -> VerifyReport:
    """Verify each log in the caller's (read-only, repeatable-read) transaction. Writes nothing:
    the caller saves the new states with ``save_states`` once it is done."""
    report = VerifyReport()
    erasures = ErasureRecords(conn, data_keys)  # each tenant's records read once per run
    for log in logs:
        report.logs.append(
            verify_log(
                conn,
                log,
                data_keys=data_keys,
                trusted=states.load(log.id),
                anchor_dir=anchor_dir,
                full=full,
                progress=progress,
                jobs=jobs,
                erasures=erasures,
            )
        )
    return report


def save_states(report: VerifyReport, states: VerifierStateStore, *, now: datetime) -> None:
    """Keep each intact log's new state; never step back to a smaller checkpoint (a long full
    run may finish after a later incremental one)."""
    for r in report.logs:
        if r.failure is not None or r.trusted is None:
            continue
        current = states.load(r.log)
        if current is None or current.checkpoint.size <= r.trusted.checkpoint.size:
            states.save(r.trusted, now=now)


def verify_log(
    conn: Connection,
    log: LogInfo,
    *,
    data_keys: DataKeyStore,
    trusted: TrustedState | None,
    anchor_dir: Path | None,
    full: bool,
    progress: Progress | None = None,
    jobs: int = 1,
    erasures: ErasureRecords | None = None,
) -> LogReport:
    """``jobs``: processes a long range may be split over (``verify_parallel``); ``erasures``:
    the run's erasure records (read here if not given)."""
    incremental = trusted is not None and not full
    report = LogReport(log.id, "incremental" if incremental else "full")
    try:
        if erasures is None:
            erasures = ErasureRecords(conn, data_keys)
        _LogVerification(conn, log, data_keys, trusted, report, jobs=jobs).run(
            erasures=erasures, anchor_dir=anchor_dir, incremental=incremental, progress=progress
        )
    except IntegrityFailure as failure:
        report.failure = failure
    return report


class _LogVerification:
    def __init__(
        self,
        conn: Connection,
        log: LogInfo,
        data_keys: DataKeyStore,
        trusted: TrustedState | None,
        report: LogReport,
        *,
        jobs: int,
    ) -> None:
        self.conn = conn
        self.jobs = jobs
        self.log = log
        self.data_keys = data_keys
        self.trusted = trusted
        self.report = report

    def fail(
        self,
        what: str,
        *,
        seq: int | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> IntegrityFailure:
        return IntegrityFailure(what, log=self.log.id, seq=seq, expected=expected, found=found)

    def run(
        self,
        *,
        erasures: ErasureRecords,
        anchor_dir: Path | None,
        incremental: bool,
        progress: Progress | None,
    ) -> None:
        keys, pinned = self._keys()
        latest = self._latest(keys)
        size, root = latest.size, RootHash(latest.root)
        self.report.to_size = size

        if self.trusted is not None:
            self._check_trusted(
                "the last verified checkpoint (verifier state)",
                self.trusted.note,
                pinned,
                size,
                root,
            )
        min_anchor = self.trusted.checkpoint.size if incremental and self.trusted else 0
        anchors = read_anchors(anchor_dir, self.log.id, min_size=min_anchor) if anchor_dir else []
        for anchored in anchors:
            self._check_anchor(anchored, pinned, size, root)
            self.report.anchors += 1

        start, frontier, prev = 0, [], bytes(GENESIS_PREV)
        if incremental and self.trusted is not None:
            start, prev = self.trusted.checkpoint.size, self.trusted.last_leaf
            frontier = self._frontier_at(self.trusted.checkpoint)
        self.report.from_size = start
        result = check_range(
            self.conn,
            self.log,
            data_keys=self.data_keys,
            keys=keys,
            start=start,
            end=size,
            frontier=frontier,
            prev=prev,
            jobs=self.jobs,
            erased_keys=erasures.erased_keys(self.log),
            progress=progress,
        )
        self.report.entries = result.entries
        self.report.checkpoints = result.checkpoints
        self.report.erased_payloads = result.erased_payloads
        self._check_nothing_beyond(size)
        self._check_head(result)
        self.report.trusted = TrustedState(
            self.log.id,
            self.log.origin,
            latest.note,
            Checkpoint(self.log.origin, size, root),
            result.last_leaf,
            tuple(v.verifier_key() for v in pinned),
        )

    # --- 1. keys -------------------------------------------------------------------------

    def _keys(self) -> tuple[dict[bytes, SigningKey], list[NoteVerifier]]:
        """The database's keys by key id, and the keys the verifier trusts after this run."""
        keys: dict[bytes, SigningKey] = {}
        for record in signing_key_records(self.conn, self.log.id):
            try:
                verifier = NoteVerifier.from_verifier_key(record.verifier_key)
            except CryptoError as exc:
                raise self.fail(f"stored verifier key is malformed: {exc}") from exc
            if verifier.key_id != record.key_id or verifier.name != self.log.origin:
                raise self.fail(
                    "stored verifier key does not match its key id or origin",
                    expected=record.key_id.hex(),
                    found=verifier.key_id.hex(),
                )
            keys[record.key_id] = SigningKey(verifier, record.retired_at)
        listed = [k.verifier for k in keys.values()]
        if self.trusted is None:
            return keys, listed  # first sight: pin what the database shows
        pinned = self.trusted.verifiers()
        self._follow_rotations(pinned)
        for verifier in pinned:
            if verifier not in listed:
                raise self.fail(
                    "pinned verifier key is no longer in the database (replaced?)",
                    expected=verifier.verifier_key(),
                    found="absent",
                )
        for verifier in listed:
            if verifier not in pinned:
                raise self.fail(
                    "verifier key is neither pinned nor certified by a signed"
                    " rotation from a pinned key",
                    found=verifier.verifier_key(),
                )
        return keys, pinned

    def _follow_rotations(self, pinned: list[NoteVerifier]) -> None:
        """Pin every new key a rotation statement from a pinned key certifies (in place)."""
        statements = rotation_statements(self.conn, self.log.id)
        changed = True
        while changed:
            changed = False
            for statement in statements:
                try:
                    rotation = parse_rotation(parse_note(statement).text)
                except CryptoError as exc:
                    raise self.fail(f"stored rotation statement is malformed: {exc}") from exc
                if rotation.old not in pinned or rotation.new in pinned:
                    continue
                try:
                    open_rotation(statement, rotation.old)
                except CryptoError as exc:
                    raise self.fail(
                        f"rotation statement to {rotation.new.verifier_key()}"
                        f" does not verify: {exc}"
                    ) from exc
                pinned.append(rotation.new)
                changed = True

    # --- 2. latest checkpoint ------------------------------------------------------------

    def _latest(self, keys: dict[bytes, SigningKey]) -> StoredCheckpoint:
        try:
            latest = latest_checkpoint(self.conn, self.log.id)
        except NotFound:
            raise self.fail("log has no checkpoint") from None
        check_checkpoint(
            self.log,
            keys,
            (latest.size, latest.root, latest.note, latest.key_id, latest.signed_at),
            expected_root=latest.root,
        )
        head = self._head()
        if head.size != latest.size or head.root != latest.root:
            raise self.fail(
                "head row disagrees with the latest signed checkpoint",
                expected=f"size {latest.size} root {b64(latest.root)}",
                found=f"size {head.size} root {b64(head.root)}",
            )
        return latest

    def _head(self) -> StoredHead:
        head = head_row(self.conn, self.log.id)
        if head is None:
            raise self.fail("log has no head row")
        return head

    # --- 3. trusted checkpoints ----------------------------------------------------------

    def _check_anchor(
        self, anchored: AnchoredNote, pinned: list[NoteVerifier], size: int, root: bytes
    ) -> None:
        where = f"anchored checkpoint {anchored.source}"
        checkpoint = self._check_trusted(where, anchored.note, pinned, size, root)
        if checkpoint.size != anchored.size:
            raise self.fail(
                f"{where} holds a checkpoint of another size",
                expected=str(anchored.size),
                found=str(checkpoint.size),
            )

    def _check_trusted(
        self, where: str, note: str, pinned: list[NoteVerifier], size: int, root: bytes
    ) -> Checkpoint:
        """``note`` must be signed by a pinned key, and the database's latest checkpoint
        (``size``, ``root``) must extend it: proven with the stored nodes."""
        try:
            checkpoint = open_checkpoint(note, pinned)
        except CryptoError as exc:
            raise self.fail(f"{where} is not signed by a pinned key of the log: {exc}") from exc
        if checkpoint.origin != self.log.origin:
            raise self.fail(
                f"{where} belongs to another log", expected=self.log.origin, found=checkpoint.origin
            )
        if checkpoint.size > size:
            raise self.fail(
                f"{where} has size {checkpoint.size}, beyond the database's latest"
                " checkpoint: entries were truncated or the database rolled back",
                expected=f"size >= {checkpoint.size}",
                found=f"size {size}",
            )
        try:
            proof = consistency_proof(self.conn, self.log.id, checkpoint.size, size)
            verify_consistency(checkpoint.size, size, proof, checkpoint.root_hash, root)
        except ConsistencyProofInvalid as exc:
            raise self.fail(
                f"the database is not consistent with {where} (size {checkpoint.size}): {exc}",
                expected=f"a tree extending root {b64(checkpoint.root_hash)}",
                found=f"size {size} root {b64(root)}",
            ) from exc
        return checkpoint

    # --- 4/5. around the entries ---------------------------------------------------------

    def _frontier_at(self, checkpoint: Checkpoint) -> list[bytes]:
        """The stored perfect nodes that tile ``[0, size)``; they must fold to the root."""
        coords = range_nodes(0, checkpoint.size)
        nodes = fetch_nodes(self.conn, self.log.id, coords)
        frontier = [nodes[c] for c in coords]
        if frontier_root(frontier, checkpoint.size) != checkpoint.root_hash:
            raise self.fail(
                f"stored tree nodes at size {checkpoint.size} do not fold to the"
                " last verified root",
                expected=b64(checkpoint.root_hash),
                found=b64(frontier_root(frontier, checkpoint.size)),
            )
        return frontier

    def _check_nothing_beyond(self, size: int) -> None:
        """No entry, payload or tree node past the latest signed checkpoint."""
        tables: tuple[tuple[SeqTable, str], ...] = (("entries", "entry"), ("payloads", "payload"))
        for table, what in tables:
            seq = first_seq_at_or_beyond(self.conn, table, self.log.id, size)
            if seq is not None:
                raise self.fail(
                    f"{what} beyond the latest signed checkpoint (size {size})", seq=seq
                )
        node = tree_node_beyond(self.conn, self.log.id, list(range(1, MAX_LEVELS)), size)
        if node is not None:
            raise self.fail(
                f"stored tree node ({node[0]}, {node[1]}) lies beyond the log (size {size})"
            )

    def _check_head(self, result: RangeResult) -> None:
        head = self._head()
        if (
            head.size != result.size
            or head.root != result.root
            or head.frontier != pack_frontier(result.frontier)
            or head.last_leaf != result.last_leaf
        ):
            raise self.fail(
                "head row disagrees with the recomputed log",
                expected=f"size {result.size} root {b64(result.root)}",
                found=f"size {head.size} root {b64(head.root)}",
            )
