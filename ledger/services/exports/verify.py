"""Offline verification of an evidence bundle (docs/evidence-bundle.md): no database, no network.

Input: the bundle (a zip) and the log's verifier keys *from the auditor* (``--verifier-key``,
an anchor), never from the bundle: the bundle's ``verifier-keys`` and ``rotations/`` only let a
key the auditor trusts certify a later one (``ledger.core.rotation``). The checks, in the
document's order, each failure a :class:`Finding` naming file, seq, check, expected and
found:

1. ``zip`` (raises :class:`~ledger.errors.BundleMalformed`, nothing is checked): a zip whose
   names are all safe (relative, ``/``-separated, no ``..``, no backslash, no drive, no
   duplicate), no member over its size limit, the total under its limit, no member compressed
   suspiciously well (a zip bomb). Members are read in memory with those limits, or streamed
   (``entries.jsonl``, ``reports/``): nothing is ever written to disk. A safe name that is not
   a bundle file is a ``files`` failure;
2. ``manifest_sig``: ``manifest.sig`` is the three-line note, opens under a trusted key named
   after the origin that ``verifier-keys`` lists, and names the SHA-256 of ``manifest.json``;
   ``manifest``: canonical JSON (RFC 8785) of format v2 (or v1) with every field of its type;
3. ``files``: every file's SHA-256 is the one in ``files``, which names exactly the files present;
4. ``checkpoint``: opens under a trusted key; its origin, size and root are the manifest's;
5. per line of ``entries.jsonl``, streamed: ``line`` (canonical JSON of the six fields),
   ``order`` (seq ascending, no seq twice), ``leaf_hash`` (SHA-256(0x00 || entry bytes)),
   ``entry_bytes`` (they name the seq and the origin), ``payload`` (when present,
   SHA-256(salt || payload) is the entry's commitment; a ``pci-dss-10`` bundle carries none:
   every line ``withheld``, payload and salt null);
6. the selection: ``range`` and ``range_proof`` (every seq of ``[s, e)``; the leaves folded
   onto ``left`` give the root at ``e``, which the consistency proof leads to the signed root),
   ``inclusion`` (one c2sp.org/tlog-proof per entry, over the bundle's checkpoint verbatim),
   ``sample`` (the seqs ``handoff-ledger/sample/v1`` draws from the signed root and the seed,
   plus the population's first and last), ``back_link`` and ``conversations`` (each listed
   conversation is one back-linked chain, read from the entry bytes: the check is the trail
   verifier's, :func:`ledger.services.trails.verify.check_back_link`), ``time_window`` (a
   range or sample exported for ``from_time``/``to_time``: where the range has a neighbour
   before the window, seq ``start`` was received before ``from_time`` and ``start + 1`` at or
   after it; where it has one after, seq ``end - 1`` at or after ``to_time`` and ``end - 2``
   before it; any other entry outside the window is a warning, since ``received_at`` need not
   grow with seq), and ``count``, ``first``, ``last``;
7. ``consistency``: ``consistency.json``, if present, leads from an earlier checkpoint that
   opens under a trusted key to the bundle's;
8. (version 2) ``erasure``: every erased payload is covered by a signed record of the tenant's
   system log (``erasures/``: the record's bytes, its tlog-proof, the system log's checkpoint
   opened under the auditor's key for that log); ``witness``: each cosignature of
   ``witnesses.json`` verifies over its checkpoint under the witness key it names.

Exit codes (``ledger verify-bundle``): 0 no failure, 1 a failure, 2 could not run
(:class:`~ledger.errors.BundleMalformed`, or ``ConfigurationError``: no key, or none for the
bundle's log). ``ops/verify_bundle_standalone.py`` makes the same checks with the standard
library and PyNaCl only; the tests run both on the same bundles.

Speed. A range bundle of a million entries is checked in one pass that never holds the entries:
``entries.jsonl`` is read in blocks of whole lines (about 4 MiB), each line checked on its own.
A block's leaf hashes become the perfect subtrees that tile their positions
(:func:`~ledger.core.merkle.range_nodes`, each hashed by
:func:`~ledger.core.merkle.root_from_leaf_hashes`), which the caller appends to the frontier with
:func:`~ledger.core.merkle.frontier_extend` (a subtree aligned to its size is one leaf of a tree
of such subtrees): a few dozen hashes a block reach the caller, never the leaves. Big files are
checked by forked worker processes, block by block, while the caller reads, hashes, orders and
folds (:data:`PARALLEL_MIN_BYTES`). A line in the one canonical shape is recognised by a match
of its fixed parts (:func:`_fast_fields`) instead of a parse and a re-serialization; any other
line goes through ``orjson`` and :func:`~ledger.core.canonical.canonicalize`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import multiprocessing
import multiprocessing.context
import os
import re
import sys
import threading
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ledger.core.canonical import MAX_SAFE_INTEGER, canonicalize
from ledger.core.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from ledger.core.commitment import COMMITMENT_ALG, SALT_SIZE, commitment_matches
from ledger.core.cosignature import CosignerVerifier, open_cosignatures
from ledger.core.merkle import (
    frontier_extend,
    frontier_root,
    leaf_hash,
    range_nodes,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from ledger.core.note import open_note, parse_note
from ledger.core.rotation import open_rotation, parse_rotation
from ledger.core.sampling import SAMPLE_ALGORITHM, sample_seqs
from ledger.core.signing import NoteVerifier, b64decode_canonical
from ledger.core.tlog_proof import parse_tlog_proof
from ledger.core.types import HASH_SIZE
from ledger.core.writer_signature import (
    KEY_RECORD_TYPES,
    KEYS_STREAM,
    WriterKey,
    WriterKeyring,
    writer_key_from_json,
    writer_keys_from_records,
)
from ledger.errors import (
    BundleMalformed,
    CanonicalizationError,
    ConfigurationError,
    CryptoError,
    NoteFormatError,
    WorkerFailed,
    WriterSignatureInvalid,
)
from ledger.services.trails.verify import Finding, Shown, check_back_link

BUNDLE_FORMAT_V1 = "handoff-ledger/evidence-bundle/v1"
BUNDLE_FORMAT = "handoff-ledger/evidence-bundle/v2"
BUNDLE_FORMATS = (BUNDLE_FORMAT_V1, BUNDLE_FORMAT)
"""Version 1 bundles still verify: everything but the erasure records and cosignatures."""
PROFILES = ("soc2-population", "pci-dss-10", "hipaa-disclosures")
SELECTIONS = ("range", "entries", "sample")
NO_PAYLOAD_PROFILE = "pci-dss-10"
"""The profile whose bundles carry no payload: card data is never present."""
PAYLOAD_STATUSES = ("verified", "erased", "missing", "undecryptable", "mismatch", "withheld")
WITHHELD_STATUSES = ("erased", "missing", "withheld")
"""Payload statuses that leave the payload out legitimately: counted, never failed."""

# The bundle's files (docs/evidence-bundle.md, "Files").
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
CHECKPOINT_FILE = "checkpoint"
VERIFIER_KEYS_FILE = "verifier-keys"
ENTRIES = "entries.jsonl"
RANGE_PROOF_FILE = "proofs/range.json"
CONSISTENCY_FILE = "consistency.json"
REPORT_NAMES = ("entries.jsonl", "rows.csv", "report.html", "ocsf.jsonl")
ERASURE_CHECKPOINT = "erasures/checkpoint"
ERASURE_KEYS = "erasures/verifier-keys"
ERASURE_RECORDS = "erasures/records.jsonl"
WRITER_KEY_RECORDS = "erasures/writer-keys.jsonl"
"""The log's writer-key records, proven in ``erasures/checkpoint`` as erasure records are."""
WITNESSES = "witnesses.json"
WRITER_KEYS_FILE = "writer-keys.json"
RECORD_TYPES = ("ledger.erasure.executed.v1", "ledger.retention.executed.v1")
"""The system log's records that may cover an erased payload, and what each says erased it."""
RECORD_STREAM = "erasure"
_ERASURE_ROTATION_NAME = re.compile(r"erasures/rotations/(0|[1-9][0-9]{0,8})\.note")
_ERASURE_PROOF_NAME = re.compile(r"erasures/proofs/(0|[1-9][0-9]{0,18})\.tlog-proof")
_ROTATION_NAME = re.compile(r"rotations/(0|[1-9][0-9]{0,8})\.note")
_TLOG_PROOF_NAME = re.compile(r"proofs/(0|[1-9][0-9]{0,18})\.tlog-proof")

# The names of the checks, shared with ops/verify_bundle_standalone.py.
MANIFEST_SIG_CHECK = "manifest_sig"
MANIFEST_CHECK = "manifest"
FILES = "files"
VERIFIER_KEYS = "verifier_keys"
ROTATION = "rotation"
CHECKPOINT = "checkpoint"
LINE = "line"
ORDER = "order"
LEAF_HASH = "leaf_hash"
ENTRY_BYTES = "entry_bytes"
PAYLOAD = "payload"
RANGE = "range"
RANGE_PROOF = "range_proof"
INCLUSION = "inclusion"
SAMPLE = "sample"
CONVERSATIONS = "conversations"
COUNT = "count"
FIRST = "first"
LAST = "last"
TIME_WINDOW = "time_window"
CONSISTENCY = "consistency"
ERASURE = "erasure"
WITNESS = "witness"
WRITER_SIGNATURE = "writer_signature"
WRITER_KEY = "writer_key"

# Limits (check 1). A member is refused by its declared size before a byte is read, and its
# reader stops at that size (zipfile truncates there and checks the CRC).
MAX_SMALL_FILE = 1 << 20
"""Signed notes, keys, proofs: each read whole into memory."""
MAX_MANIFEST = 64 << 20
"""``manifest.json`` names every file (one tlog-proof per entry of a selection)."""
MAX_STREAMED_FILE = 64 << 30
"""``entries.jsonl`` and ``reports/``: streamed, never held."""
MAX_TOTAL = 128 << 30
MAX_MEMBERS = 2_000_000
MAX_RATIO = 100
"""A member over :data:`RATIO_FLOOR` bytes that deflates more than this is a zip bomb: lines of
base64 hashes compress about 7:1, deflate's ceiling is about 1030:1."""
RATIO_FLOOR = 1 << 20
MAX_LINE = 16 << 20
"""One line of ``entries.jsonl`` (an entry and a payload of at most 1 MiB, in base64)."""

BLOCK = 4 << 20
"""``entries.jsonl`` is read and checked in blocks of whole lines of about this size."""
PARALLEL_MIN_BYTES = 32 << 20
"""Below this size of ``entries.jsonl`` one process is as fast as several (about 30,000
entries); above it, ``max(CPUs - 1, 2)`` processes (at most 8) check the blocks while this one
reads, hashes and folds them."""
MAX_FINDINGS = 1000
"""Failures (and warnings) kept in a report; the rest are counted (a bundle whose every entry
fails would otherwise hold a million findings)."""

_LINE_FIELDS = frozenset(
    ("seq", "leaf_hash", "entry_b64", "payload_status", "payload_b64", "payload_salt")
)


class _Findings:
    """Failures or warnings: the first :data:`MAX_FINDINGS` kept, all counted."""

    __slots__ = ("items", "total")

    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.total = 0

    def add(self, finding: Finding) -> None:
        self.total += 1
        if len(self.items) < MAX_FINDINGS:
            self.items.append(finding)

    def extend(self, items: Sequence[Finding], total: int) -> None:
        room = MAX_FINDINGS - len(self.items)
        self.items.extend(items[: max(room, 0)])
        self.total += total


@dataclass
class BundleReport:
    """What was checked and found. ``intact`` when there is no failure; warnings do not fail."""

    file: str
    format: str | None = None
    origin: str | None = None
    log: str | None = None
    profile: str | None = None
    selection: str | None = None
    query: Any = None
    generated_at: str | None = None
    generated_by: Any = None
    tree_size: int | None = None
    root: str | None = None
    manifest_signed_by: list[str] = field(default_factory=list)
    checkpoint_signed_by: list[str] = field(default_factory=list)
    """Empty when the checkpoint did not open under a trusted key."""
    certified_keys: list[str] = field(default_factory=list)
    """Keys trusted because a trusted key certified them (``rotations/``)."""
    range: tuple[int, int] | None = None
    time_window: tuple[str | None, str | None] | None = None
    """The manifest's query ``(from_time, to_time)``, for a range or sample exported for one."""
    sample_size: int | None = None
    sample_seed: str | None = None
    conversations: list[str] = field(default_factory=list)
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    payloads_verified: int = 0
    withheld: dict[str, int] = field(default_factory=dict)
    consistency_from: int | None = None
    """The size of the earlier checkpoint ``consistency.json`` proves, when it checks out."""
    erasures: dict[str, int] | None = None
    """Version 2: erased payloads by what erased them (``by_erasure``, ``by_retention``), and
    the records that cover them."""
    witnesses: list[dict[str, Any]] = field(default_factory=list)
    """Version 2: the cosignatures that verified: which checkpoint, which witness key."""
    files_checked: int = 0
    writer_signatures: int = 0
    """Entries whose writer signature verified against ``writer-keys.json``."""
    _failures: _Findings = field(default_factory=_Findings, repr=False)
    _warnings: _Findings = field(default_factory=_Findings, repr=False)

    @property
    def failures(self) -> list[Finding]:
        return self._failures.items

    @property
    def failures_total(self) -> int:
        return self._failures.total

    @property
    def warnings(self) -> list[Finding]:
        return self._warnings.items

    @property
    def warnings_total(self) -> int:
        return self._warnings.total

    @property
    def intact(self) -> bool:
        return self._failures.total == 0

    def fail(
        self,
        file: str,
        check: str,
        message: str,
        seq: int | None = None,
        *,
        expected: Shown = None,
        found: Shown = None,
    ) -> None:
        self._failures.add(Finding(check, message, seq, expected, found, file=file))

    def warn(self, file: str, check: str, message: str, seq: int | None = None) -> None:
        self._warnings.add(Finding(check, message, seq, file=file))

    def absorb(
        self, failures: _Findings, warnings: _Findings, verified: int, withheld: dict[str, int]
    ) -> None:
        """What one block of entries.jsonl found."""
        self._failures.extend(failures.items, failures.total)
        self._warnings.extend(warnings.items, warnings.total)
        self.payloads_verified += verified
        for status, count in withheld.items():
            self.withheld[status] = self.withheld.get(status, 0) + count

    def proven(self) -> list[str]:
        if not self.intact:
            return []
        keys = ", ".join(self.manifest_signed_by)
        lines = [
            f"the manifest is signed by your key {keys}, and every file of the bundle is, byte "
            "for byte, the one the manifest names (SHA-256); no file was added or removed",
            f"each of the {self.entries} entries is, byte for byte, the leaf at its seq in the "
            f"log {self.origin!r} of {self.tree_size} entries whose checkpoint is signed by your "
            f"key {', '.join(self.checkpoint_signed_by)}",
        ]
        if self.selection == "range" and self.range is not None:
            s, e = self.range
            lines.append(
                f"the bundle holds every entry of seq [{s}, {e}), in order: none is missing and "
                "none was added (the range's leaves rebuild the signed root)"
            )
        elif self.selection == "sample" and self.range is not None:
            s, e = self.range
            lines.append(
                f"the {self.sample_size} sampled entries are the ones {SAMPLE_ALGORITHM} draws "
                f"from [{s}, {e}) with the signed root and the seed {self.sample_seed!r}: "
                "neither the ledger nor the auditor chose them"
            )
        elif self.selection == "entries":
            lines.append(
                f"each of the {len(self.conversations)} conversations is gap-free from its first "
                "entry (which names no predecessor) to its last one here: each entry names the "
                "one before it, and every named entry is here"
            )
        if self.time_window is not None and self.range is not None:
            lines.append(self._window_proven(self.range, self.time_window))
        lines.append(
            f"{self.payloads_verified} payloads are the exact data committed in their entries"
        )
        if self.consistency_from is not None:
            lines.append(
                f"the log of {self.tree_size} entries extends, unchanged, the log of "
                f"{self.consistency_from} entries of the earlier checkpoint signed by your key"
            )
        if self.erasures is not None:
            lines.append(
                f"each of the {self.erasures['by_erasure'] + self.erasures['by_retention']} "
                f"erased payloads is covered by a signed record of the tenant's system log "
                f"({self.erasures['by_erasure']} by an erasure, {self.erasures['by_retention']} "
                f"by retention; {self.erasures['records']} records, each in the system log's "
                "checkpoint signed by your key)"
            )
        for w in self.witnesses:
            lines.append(f"witness {w['witness']} cosigned {w['checkpoint']} (size {w['size']})")
        if self.writer_signatures:
            lines.append(
                f"{self.writer_signatures} entries are statements signed by their writer's key "
                "(each key named by its RFC 7638 thumbprint inside the signed entry; whose key "
                "it is, compare with the keys the writer publishes)"
            )
        return lines

    def _window_proven(
        self, population: tuple[int, int], window: tuple[str | None, str | None]
    ) -> str:
        (s, e), (start, end) = population, window
        # A sample holds the entries next to the population's first and last only if drawn.
        tight = self.selection == "range"
        what = "range" if tight else "population"
        sides = []
        if start is not None:
            sides.append(
                f"seq {s} was received before {start}" + f", seq {s + 1} at or after it" * tight
                if s > 0
                else f"the {what} starts at the log's first entry"
            )
        if end is not None:
            sides.append(
                f"seq {e - 1} was received at or after {end}" + f", seq {e - 2} before it" * tight
                if e < (self.tree_size or 0)
                else f"the {what} ends at the checkpoint's last entry"
            )
        return (
            f"the time window [{start or '-'}, {end or '-'}) is complete at both ends: the "
            f"{what} [{s}, {e}) holds every entry received in it, as far as received_at grows "
            f"with seq ({'; '.join(sides)})"
        )

    def not_proven(self) -> list[str]:
        lines: list[str] = []
        if self.selection == "range":
            lines.append("anything outside the range")
        elif self.selection == "sample":
            lines.append("anything about the entries of the population that were not drawn")
        elif self.selection == "entries":
            lines.append(
                "that a conversation has no entry after its last one here: back-links point "
                f"backwards, so later entries (even within the checkpoint's {self.tree_size}) "
                "would simply not be in the bundle"
            )
        if self.time_window is not None:
            lines.append(
                "that received_at grows with seq: an entry received in the window but sequenced "
                "outside the range (clock skew between server processes) is not here; entries "
                "of the range received outside the window are listed as warnings"
            )
        if self.time_window is not None and self.selection == "sample":
            lines.append(
                "that the population is no wider than the window and its two neighbours: the "
                "entries next to its first and last are checked only when the sample drew them"
            )
        if self.consistency_from is None:
            lines.append(
                "that this checkpoint is consistent with checkpoints you hold from elsewhere "
                "(compare it with an anchor or a witness, or ask for a consistency proof)"
            )
        erased = self.withheld.get("erased", 0)
        if erased and self.format == BUNDLE_FORMAT_V1:
            lines.append(
                f"that the {erased} erased payloads were erased by a recorded erasure: a "
                "version 1 bundle carries no erasure records"
            )
        if any(not w["trusted"] for w in self.witnesses):
            lines.append(
                "that the witness keys are the witnesses': the bundle names them; compare them "
                "with the keys the witnesses publish, or pass those as --witness-key"
            )
        lines += [
            "the content of payloads that are erased, missing or withheld",
            "the query, generated_at and generated_by: the ledger states them, and signs them",
            "the reports under reports/: signed and hashed, not re-derived from the entries",
        ]
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "verified" if self.intact else "failed",
            "intact": self.intact,
            "file": self.file,
            "format": self.format,
            "log": self.log,
            "origin": self.origin,
            "profile": self.profile,
            "selection": self.selection,
            "query": self.query,
            "generated_at": self.generated_at,
            "generated_by": self.generated_by,
            "tree_size": self.tree_size,
            "root": self.root,
            "manifest": {"signed_by": self.manifest_signed_by},
            "checkpoint": {"signed_by": self.checkpoint_signed_by},
            "certified_keys": self.certified_keys,
            "range": None if self.range is None else list(self.range),
            "time_window": None
            if self.time_window is None
            else {"from_time": self.time_window[0], "to_time": self.time_window[1]},
            "sample": None
            if self.sample_size is None
            else {"size": self.sample_size, "seed": self.sample_seed},
            "conversations": self.conversations,
            "entries": {"count": self.entries, "first": self.first_seq, "last": self.last_seq},
            "payloads": {"verified": self.payloads_verified, "withheld": self.withheld},
            "consistency": None
            if self.consistency_from is None
            else {"from_size": self.consistency_from},
            "erasures": self.erasures,
            "witnesses": self.witnesses,
            "writer_signatures": {"verified": self.writer_signatures},
            "files_checked": self.files_checked,
            "failures": [f.as_json() for f in self.failures],
            "failures_total": self.failures_total,
            "warnings": [w.as_json() for w in self.warnings],
            "warnings_total": self.warnings_total,
            "proven": self.proven(),
            "not_proven": self.not_proven(),
        }


Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)`` of ``entries.jsonl``, after each block."""


# --- 1. the zip ----------------------------------------------------------------------------------


def _is_bundle_file(name: str) -> bool:
    return (
        name
        in (MANIFEST, MANIFEST_SIG, CHECKPOINT_FILE, VERIFIER_KEYS_FILE, ENTRIES, RANGE_PROOF_FILE)
        or name in (CONSISTENCY_FILE, ERASURE_CHECKPOINT, ERASURE_KEYS, ERASURE_RECORDS, WITNESSES)
        or name in (WRITER_KEYS_FILE, WRITER_KEY_RECORDS)
        or _ERASURE_ROTATION_NAME.fullmatch(name) is not None
        or _ERASURE_PROOF_NAME.fullmatch(name) is not None
        or _ROTATION_NAME.fullmatch(name) is not None
        or _TLOG_PROOF_NAME.fullmatch(name) is not None
        or (name.startswith("reports/") and name[len("reports/") :] in REPORT_NAMES)
    )


def _size_limit(name: str) -> int:
    if name in (MANIFEST, ERASURE_RECORDS, WRITER_KEY_RECORDS):
        return MAX_MANIFEST
    if name == ENTRIES or name.startswith("reports/") or not _is_bundle_file(name):
        return MAX_STREAMED_FILE
    return MAX_SMALL_FILE


def _unsafe(name: str) -> str | None:
    """Why ``name`` may not be a bundle path, or None."""
    parts = name.removesuffix("/").split("/")
    for bad, why in (
        (not name, "an empty name"),
        (name.startswith("/"), "an absolute path"),
        ("\\" in name, "a backslash"),
        (":" in name, "a drive or stream name (':')"),
        (any(ord(ch) < 0x20 or ch == "\x7f" for ch in name), "a control character"),
        (any(part in ("", ".", "..") for part in parts), "an empty, '.' or '..' path component"),
    ):
        if bad:
            return why
    return None


class _Zip:
    """The bundle's members, checked for safety before anything is read, read with limits and
    hashed as they are read (check 3 compares the digests)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except FileNotFoundError as exc:
            raise BundleMalformed(f"{path}: no such file") from exc
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise BundleMalformed(f"{path} is not a zip file (or is truncated): {exc}") from exc
        try:
            self.infos = self._check_members()
        except BaseException:
            self.zf.close()
            raise
        self.digests: dict[str, str] = {}

    def close(self) -> None:
        self.zf.close()

    def _check_members(self) -> dict[str, zipfile.ZipInfo]:
        infos: dict[str, zipfile.ZipInfo] = {}
        members = self.zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise BundleMalformed(f"the zip has {len(members)} members, more than {MAX_MEMBERS}")
        total = 0
        for info in members:
            name = info.filename
            why = _unsafe(name) or (_unsafe(info.orig_filename) if "\x00" in name else None)
            if "\x00" in info.orig_filename:
                why = "a NUL byte"
            if why is not None:
                raise BundleMalformed(f"member {name[:80]!r} has an unsafe name: {why}")
            if name in infos:
                raise BundleMalformed(f"member {name!r} is in the zip twice")
            if info.flag_bits & 0x1:
                raise BundleMalformed(f"member {name!r} is encrypted")
            limit = _size_limit(name)
            if info.file_size > limit:
                raise BundleMalformed(
                    f"member {name!r} is {info.file_size} bytes uncompressed, over its limit "
                    f"of {limit}"
                )
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(
                info.compress_size, 1
            ):
                raise BundleMalformed(
                    f"member {name!r} expands from {info.compress_size} to {info.file_size} "
                    f"bytes, more than {MAX_RATIO}:1: a zip bomb"
                )
            total += info.file_size
            if total > MAX_TOTAL:
                raise BundleMalformed(
                    f"the members total more than {MAX_TOTAL} bytes uncompressed: a zip bomb"
                )
            infos[name] = info
        return infos

    def has(self, name: str) -> bool:
        return name in self.infos

    def size(self, name: str) -> int:
        return self.infos[name].file_size

    def chunks(self, name: str, size: int = BLOCK) -> Iterator[bytes]:
        """The member's bytes in pieces, exactly its declared size; its digest recorded at the
        end. Raises BundleMalformed if the zip cannot be read (truncated, bad CRC)."""
        info = self.infos[name]
        digest = hashlib.sha256()
        left = info.file_size
        member = _guard(name, lambda: self.zf.open(info))
        with member:
            while left > 0:
                piece = _guard(name, partial(member.read, min(size, left)))
                if not piece:
                    raise BundleMalformed(f"member {name!r} is shorter than it declares")
                left -= len(piece)
                digest.update(piece)
                yield piece
        self.digests[name] = digest.hexdigest()

    def read(self, name: str) -> bytes:
        """The whole member (its size limit was checked when the zip was opened)."""
        return b"".join(self.chunks(name))

    def digest(self, name: str) -> str:
        if name not in self.digests:
            for _ in self.chunks(name):
                pass
        return self.digests[name]


_T = TypeVar("_T")
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,  # encrypted
    NotImplementedError,  # a compression method zipfile does not have
    ValueError,
)


def _guard(name: str, action: Callable[[], _T]) -> _T:
    """``action()``, its zip errors (truncated, bad CRC, bad compression) as BundleMalformed."""
    try:
        return action()
    except _ZIP_ERRORS as exc:
        raise BundleMalformed(f"member {name!r} cannot be read: {exc}") from exc


# --- the entry lines (check 5), in blocks: the work a process pool shares -----------------------


@dataclass(frozen=True, slots=True)
class _ScanParams:
    origin: str
    links: bool
    """Whether to return each entry's conversation and back-link (``entries`` selection)."""
    keep_leaves: bool
    """Whether to return the leaf hashes (a selection's tlog-proofs need them)."""
    fold_from: int | None
    """For a range, the leaf index of line 1: the block's leaves are returned folded into the
    perfect subtrees that tile their positions (:attr:`_Scan.tiles`)."""
    no_payloads: bool = False
    """The profile carries no payload (``pci-dss-10``): every line must be ``withheld``."""
    window: _Window | None = None
    """The time window a range or sample was exported for, checked on each entry."""
    writer_keys: tuple[WriterKey, ...] = ()
    """``writer-keys.json``: what each entry's writer signature is checked against."""


@dataclass(frozen=True, slots=True)
class _Window:
    """A range's (or sample population's) ``[start, end)`` and the time window it was exported
    for (the manifest's ``query``), each bound as given and as an instant."""

    start: int
    end: int
    tree_size: int
    from_text: str | None
    to_text: str | None
    from_time: datetime | None
    to_time: datetime | None


def _instant(value: Any) -> datetime | None:
    """An RFC 3339 time with its offset (``…Z``), as an instant; None if it is not one. The
    parser is the one the export's query is read with."""
    if type(value) is not str:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


WINDOW_FIRST = (
    "the range's first entry, the neighbour before the time window, was received at or after "
    "from_time: entries of the window may be missing before it"
)
WINDOW_SECOND = (
    "the range's second entry, the window's first, was received before from_time: the range "
    "does not start at the window's neighbour"
)
WINDOW_LAST = (
    "the range's last entry, the neighbour after the time window, was received before "
    "to_time: entries of the window may be missing after it"
)
WINDOW_BEFORE_LAST = (
    "the range's last entry but one, the window's last, was received at or after to_time: the "
    "range does not end at the window's neighbour"
)


def _check_window(received: Any, seq: int, w: _Window, scan: _Scan) -> None:
    """Check 6 for a time window on one entry (docs/evidence-bundle.md, "Selections"): where
    the range has a neighbour before the window (``start > 0``), line 1 (seq ``start``) was
    received before ``from_time`` and seq ``start + 1`` at or after it; where it has one after
    (``end < tree_size``), seq ``end - 1`` at or after ``to_time`` and seq ``end - 2`` before
    it. Any other entry received outside the window is a warning: received_at is the clock of
    the server process that took the event, and two processes' clocks may differ a little."""
    at = _instant(received)
    if at is None:
        scan.fail(
            TIME_WINDOW,
            "the entry bytes' received_at is not an RFC 3339 time",
            seq,
            found=_show(received),
        )
        return
    before = w.from_time is not None and at < w.from_time
    after = w.to_time is not None and at >= w.to_time
    failed = False

    def fail(message: str, expected: str) -> None:
        nonlocal failed
        failed = True
        scan.fail(TIME_WINDOW, message, seq, expected=expected, found=received)

    if w.from_time is not None and w.start > 0:
        if seq == w.start and not before:
            fail(WINDOW_FIRST, f"< {w.from_text}")
        elif seq == w.start + 1 and before:
            fail(WINDOW_SECOND, f">= {w.from_text}")
    if w.to_time is not None and w.end < w.tree_size:
        if seq == w.end - 1 and not after:
            fail(WINDOW_LAST, f">= {w.to_text}")
        elif seq == w.end - 2 and after:
            fail(WINDOW_BEFORE_LAST, f"< {w.to_text}")
    neighbour = (seq == w.start and before) or (seq == w.end - 1 and after)
    if (before or after) and not (neighbour or failed):
        scan.warn(
            TIME_WINDOW,
            f"received at {received}, outside the time window, inside the range: received_at "
            "does not grow with seq here (clock skew between server processes?)",
            seq,
        )


@dataclass(slots=True)
class _Scan:
    """What one block of lines holds, line by line, and what failed in it."""

    seqs: list[int | None] = field(default_factory=list)
    """Per line, the seq it states (None for a line that cannot be read)."""
    leaves: list[bytes] = field(default_factory=list)
    """Per line, the recomputed leaf hash (32 zero bytes for a line that cannot be read); empty
    unless asked for."""
    tiles: list[tuple[int, int, bytes]] = field(default_factory=list)
    """For a range: the perfect subtrees ``(level, index, hash)`` over the block's leaves, left
    to right (``range_nodes`` of their positions), to append to the frontier."""
    links: list[tuple[str | None, bool, Any]] = field(default_factory=list)
    """Per line, if asked: (conversation, whether conversation_prev is present, its value)."""
    first_leaf: str = ""
    last_leaf: str = ""
    """The leaf_hash the block's first and last lines state (for the manifest's first/last)."""
    verified: int = 0
    withheld: dict[str, int] = field(default_factory=dict)
    erased: list[tuple[int, str | None]] = field(default_factory=list)
    """``(seq, conversation)`` of each erased payload, for check 8."""
    failures: _Findings = field(default_factory=_Findings)
    warnings: _Findings = field(default_factory=_Findings)
    writer_signed: int = 0
    """Entries whose writer signature verified."""

    def fail(
        self,
        check: str,
        message: str,
        seq: int | None,
        *,
        expected: Shown = None,
        found: Shown = None,
    ) -> None:
        self.failures.add(Finding(check, message, seq, expected, found, file=ENTRIES))

    def warn(self, check: str, message: str, seq: int | None) -> None:
        self.warnings.add(Finding(check, message, seq, file=ENTRIES))


_NO_LEAF = bytes(HASH_SIZE)
_NO_LINK: tuple[str | None, bool, Any] = (None, False, None)
_B64_PAD1 = frozenset(b"AEIMQUYcgkosw048")  # the last character before "=": low 2 bits zero
_B64_PAD2 = frozenset(b"AQgw")  # the last character before "==": low 4 bits zero

_Fields = tuple[int, bytes, bytes, str, bytes | None, bytes | None]
"""A line's seq, entry bytes, leaf_hash (as given), payload_status, payload bytes and salt."""


def _b64_strict(text: bytes) -> bytes:
    """Canonical standard base64 (one text per byte string), fast. Raises ValueError
    (``binascii.Error`` is one)."""
    raw = binascii.a2b_base64(text, strict_mode=True)
    if text[-1:] == b"=" and (
        text[-3] not in _B64_PAD2 if text[-2:] == b"==" else text[-2] not in _B64_PAD1
    ):
        raise ValueError("not canonical base64")
    return raw


_LINE_HEAD = b'{"entry_b64":"'
_LINE_REST = re.compile(
    rb'","leaf_hash":"([A-Za-z0-9+/]*={0,2})",'
    rb'"payload_b64":(?:null|"([A-Za-z0-9+/]*={0,2})"),'
    rb'"payload_salt":(?:null|"([A-Za-z0-9+/]*={0,2})"),'
    rb'"payload_status":"(verified|erased|missing|undecryptable|mismatch|withheld)",'
    rb'"seq":(0|[1-9][0-9]{0,15})\}'
)


def _fast_fields(line: bytes) -> _Fields | None:
    """The fields of a line in the one form RFC 8785 gives a valid line, or None for anything
    else (the slow path then says what is wrong).

    With every string base64 (decoded strictly: alphabet and padding, nothing to escape) or a
    payload_status (a fixed lowercase word), and seq a plain integer, the canonical line is
    ``{"entry_b64":"…","leaf_hash":"…","payload_b64":"…"|null,"payload_salt":"…"|null,
    "payload_status":"…","seq":n}``, keys sorted, no whitespace: a line that is exactly that
    is canonical, recognised at a fraction of the cost of a parse and a re-serialization (a
    million lines a run). The entry's base64, the bulk of the line, is only scanned once, by
    the strict decoder.
    """
    if not line.startswith(_LINE_HEAD):
        return None
    end = line.find(b'"', len(_LINE_HEAD))
    m = _LINE_REST.fullmatch(line, end) if end > 0 else None
    if m is None:
        return None
    given, payload_b64, salt_b64, status, seq_text = m.groups()
    try:
        seq = int(seq_text)
        if seq > MAX_SAFE_INTEGER:
            raise ValueError("not a safe integer")  # noqa: TRY301
        raw = _b64_strict(line[len(_LINE_HEAD) : end])
        payload = None if payload_b64 is None else _b64_strict(payload_b64)
        salt = None if salt_b64 is None else _b64_strict(salt_b64)
    except ValueError:
        return None
    return seq, raw, given, status.decode("ascii"), payload, salt


def _scan_block(block: bytes, first_line: int, params: _ScanParams) -> _Scan:
    """Check 5 on every line of ``block`` (whole lines, ``\\n``-separated). Pure; runs in a
    worker process for big bundles. Order, completeness and proofs are the caller's."""
    scan = _Scan()
    origin = params.origin
    want_links = params.links
    loads = orjson.loads
    a2b, b2a = binascii.a2b_base64, binascii.b2a_base64
    seqs, leaves, links = scan.seqs, scan.leaves, scan.links
    writer_keys = WriterKeyring(list(params.writer_keys))
    lines = block.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    if lines:
        scan.first_leaf = _given_leaf(lines[0])
        scan.last_leaf = _given_leaf(lines[-1])
    for number, line in enumerate(lines, start=first_line):
        fields = _fast_fields(line) or _slow_line(line, number, scan)
        if fields is None:
            seqs.append(None)
            leaves.append(_NO_LEAF)
            if want_links:
                links.append(_NO_LINK)
            continue
        seq, raw, given, status, payload, salt = fields
        seqs.append(seq)
        if params.no_payloads and (status != "withheld" or payload is not None or salt is not None):
            scan.fail(
                PAYLOAD,
                f"a {NO_PAYLOAD_PROFILE} bundle carries no payload (card data is never present): "
                "payload_b64 and payload_salt must be null, payload_status withheld",
                seq,
                expected="withheld",
                found=status + (" with a payload" if payload is not None else ""),
            )
        leaf = leaf_hash(raw)
        leaves.append(leaf)
        computed = b2a(leaf, newline=False)
        if computed != given:
            scan.fail(
                LEAF_HASH,
                "SHA-256(0x00 || entry bytes) is not the leaf hash given",
                seq,
                expected=computed.decode("ascii"),
                found=given.decode("ascii", "replace")[:64],
            )
        try:
            entry = loads(raw)
        except orjson.JSONDecodeError:
            entry = None
        if type(entry) is not dict:
            scan.fail(ENTRY_BYTES, "the entry bytes are not a JSON object", seq)
            if want_links:
                links.append(_NO_LINK)
            continue
        if entry.get("seq") != seq or type(entry.get("seq")) is not int:
            scan.fail(
                ENTRY_BYTES,
                "the entry bytes name another seq",
                seq,
                expected=seq,
                found=_show(entry.get("seq")),
            )
        if entry.get("origin") != origin:
            scan.fail(
                ENTRY_BYTES,
                "the entry bytes name another log origin",
                seq,
                expected=origin,
                found=_show(entry.get("origin")),
            )
        if params.window is not None:
            _check_window(entry.get("received_at"), seq, params.window, scan)
        if "writer_signature" in entry:  # rebuilt from the entry alone: erasure changes nothing
            reason = writer_keys.check_entry(entry)
            if reason is None:
                scan.writer_signed += 1
            else:
                scan.fail(WRITER_SIGNATURE, f"writer signature: {reason}", seq)
        if want_links:
            event = entry.get("event")
            conversation = event.get("conversation") if type(event) is dict else None
            links.append(
                (
                    conversation if type(conversation) is str else None,
                    "conversation_prev" in entry,
                    entry.get("conversation_prev"),
                )
            )
        if payload is None and salt is None and status in WITHHELD_STATUSES:
            scan.withheld[status] = scan.withheld.get(status, 0) + 1
            if status == "erased":
                event = entry.get("event")
                conversation = event.get("conversation") if type(event) is dict else None
                scan.erased.append((seq, conversation if type(conversation) is str else None))
            continue
        committed = entry.get("payload")
        try:  # the usual case, inline: a verified payload that matches its commitment
            usual = (
                status == "verified"
                and salt is not None
                and payload is not None
                and len(salt) == SALT_SIZE
                and type(committed) is dict
                and committed.get("alg") == COMMITMENT_ALG
                and type(commitment := committed.get("commitment")) is str
                and commitment_matches(a2b(commitment, strict_mode=True), salt, payload)
            )
        except ValueError:  # binascii.Error: the slow path says what is wrong
            usual = False
        if usual:
            scan.verified += 1
        else:
            _check_payload(entry, seq, status, payload=payload, salt=salt, scan=scan)
    if params.fold_from is not None and leaves:
        at = params.fold_from + first_line - 1
        offset = 0
        for level, index in range_nodes(at, at + len(leaves)):
            width = 1 << level
            tile = root_from_leaf_hashes(leaves[offset : offset + width])
            scan.tiles.append((level, index, tile))
            offset += width
    if not params.keep_leaves:
        scan.leaves = []
    return scan


def _given_leaf(line: bytes) -> str:
    """The leaf_hash a line states, for the manifest's first/last ("" if it has none)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return ""
    found = value.get("leaf_hash") if type(value) is dict else None
    return found if type(found) is str else ""


def _slow_line(line: bytes, number: int, scan: _Scan) -> _Fields | None:
    """A line not in the fast form: parse it, say what is wrong with it. Returns its fields
    when they can still be checked, else None."""

    def fail(check: str, message: str, seq: int | None = None) -> None:
        scan.fail(check, f"line {number}: {message}", seq)

    if not line:
        fail(LINE, "an empty line")
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        fail(LINE, f"not JSON: {exc}")
        return None
    if type(obj) is not dict:
        fail(LINE, "not a JSON object")
        return None
    named = obj.get("seq")
    seq = named if type(named) is int and 0 <= named <= MAX_SAFE_INTEGER else None
    if set(obj) != _LINE_FIELDS:
        missing = ", ".join(sorted(_LINE_FIELDS - set(obj))) or "none"
        extra = ", ".join(sorted(set(obj) - _LINE_FIELDS)) or "none"
        fail(LINE, f"not the fields of an entry line (missing: {missing}; extra: {extra})", seq)
    try:
        canonical = canonicalize(obj) == line
    except CanonicalizationError:
        canonical = False
    if not canonical:
        fail(LINE, "not canonical JSON (RFC 8785)", seq)
    strings = [obj.get(k) for k in ("entry_b64", "leaf_hash", "payload_status")]
    optional = [obj.get(k) for k in ("payload_b64", "payload_salt")]
    if (
        seq is None
        or not all(type(v) is str and v.isascii() for v in strings)
        or not all(v is None or (type(v) is str and v.isascii()) for v in optional)
    ):
        fail(LINE, "seq is not a non-negative integer, or a field is not of its type", seq)
        return None
    given, status = (str(v).encode("ascii") for v in strings[1:])
    decoded: list[bytes | None] = []
    names = ("entry_b64", "payload_b64", "payload_salt")
    for what, value in zip(names, (strings[0], *optional), strict=True):
        try:
            decoded.append(None if value is None else _b64_strict(str(value).encode("ascii")))
        except ValueError:
            fail(
                ENTRY_BYTES if what == "entry_b64" else PAYLOAD,
                f"{what} is not canonical base64",
                seq,
            )
            return None
    raw, payload, salt = decoded
    assert raw is not None
    return seq, raw, given, status.decode("ascii"), payload, salt


def _check_payload(
    entry: Mapping[str, Any],
    seq: int,
    status: str,
    *,
    payload: bytes | None,
    salt: bytes | None,
    scan: _Scan,
) -> None:
    """The payload of one line against its entry's commitment (as ``verify-trail`` does)."""
    if status not in PAYLOAD_STATUSES:
        scan.fail(PAYLOAD, "payload_status is not one of the document's", seq, found=status)
        return
    if payload is None or salt is None:
        if payload is not None or salt is not None:
            scan.fail(PAYLOAD, "payload_b64 and payload_salt must come together", seq)
        elif status == "verified":
            scan.fail(
                PAYLOAD, "payload_status is verified, but no payload bytes and salt are given", seq
            )
        else:
            scan.warn(
                PAYLOAD, f"the ledger could not read this payload (payload_status {status!r})", seq
            )
        return
    committed = entry.get("payload")
    try:
        if type(committed) is not dict or committed.get("alg") != COMMITMENT_ALG:
            raise ValueError(f"the entry's payload commitment is not {COMMITMENT_ALG}")  # noqa: TRY301
        commitment = _b64_strict(str(committed.get("commitment")).encode("ascii"))
    except (ValueError, UnicodeError) as exc:
        scan.fail(PAYLOAD, f"the payload cannot be checked: {exc}", seq)
        return
    if len(salt) != SALT_SIZE:
        scan.fail(PAYLOAD, f"payload_salt is {len(salt)} bytes, not {SALT_SIZE}", seq)
        return
    if not commitment_matches(commitment, salt, payload):
        if status == "mismatch":
            scan.warn(
                PAYLOAD,
                "the ledger reports this payload does not match its commitment, and it does "
                "not: its content is not proven",
                seq,
            )
        else:
            scan.fail(
                PAYLOAD,
                "SHA-256(salt || payload bytes) is not the entry's commitment",
                seq,
                expected=_b64(commitment),
                found=_b64(hashlib.sha256(salt + payload).digest()),
            )
        return
    if status != "verified":
        scan.warn(
            PAYLOAD,
            f"payload_status is {status!r}, but the payload checks against its commitment",
            seq,
        )
    scan.verified += 1


def _blocks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Whole lines, in blocks: each chunk up to its last newline, the rest carried over."""
    rest = b""
    for chunk in chunks:
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > MAX_LINE:
                raise BundleMalformed(f"{ENTRIES} has a line longer than {MAX_LINE} bytes")
            rest = data
            continue
        rest = data[cut:]
        if len(rest) > MAX_LINE:
            raise BundleMalformed(f"{ENTRIES} has a line longer than {MAX_LINE} bytes")
        yield data[:cut]
    if rest:
        yield rest  # a last line without its newline


def _pool_context() -> multiprocessing.context.BaseContext | None:
    """Processes forked from this one, where that is safe: on Linux (fork is the platform's
    own), from a process running one thread (a child forked from a threaded process can
    deadlock). Else None: the caller checks every block itself. Forked workers import nothing
    and never run the caller's ``__main__`` again, as spawned ones would."""
    if sys.platform != "linux" or threading.active_count() > 1:
        return None
    return multiprocessing.get_context("fork")


def _scans(
    bundle: _Zip, params: _ScanParams, jobs: int | None, progress: Progress | None
) -> Iterator[_Scan]:
    """The blocks of ``entries.jsonl`` scanned in order, by ``jobs`` processes when big."""
    total = bundle.size(ENTRIES)
    if jobs is None:
        cpus = os.cpu_count() or 1
        jobs = min(max(cpus - 1, 2), 8) if cpus > 1 and total >= PARALLEL_MIN_BYTES else 1
    context = _pool_context() if jobs > 1 else None
    done = 0
    line = 1
    if context is None:
        for block in _blocks(bundle.chunks(ENTRIES)):
            scan = _scan_block(block, line, params)
            line += block.count(b"\n") + (not block.endswith(b"\n"))
            done += len(block)
            if progress is not None:
                progress(done, total)
            yield scan
        return
    try:
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            pending: deque[tuple[Future[_Scan], int]] = deque()
            for block in _blocks(bundle.chunks(ENTRIES)):
                pending.append((pool.submit(_scan_block, block, line, params), len(block)))
                line += block.count(b"\n") + (not block.endswith(b"\n"))
                while len(pending) > 2 * jobs or (pending and pending[0][0].done()):
                    future, size = pending.popleft()
                    done += size
                    yield future.result()
                    if progress is not None:
                        progress(done, total)
            while pending:
                future, size = pending.popleft()
                done += size
                yield future.result()
                if progress is not None:
                    progress(done, total)
    except BrokenProcessPool as exc:
        raise WorkerFailed(f"a process checking {ENTRIES} died: {exc}") from exc


# --- the whole bundle ----------------------------------------------------------------------------


@dataclass
class _Manifest:
    origin: str
    tree_size: int
    root: bytes
    selection: str | None
    files: dict[str, str]
    raw: dict[str, Any]


def verify_bundle(
    path: Path,
    verifiers: Sequence[NoteVerifier],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
    witness_keys: Sequence[str] = (),
) -> BundleReport:
    """Checks 1-8 of docs/evidence-bundle.md on the bundle at ``path``, with the auditor's keys
    (``witness_keys``: the witnesses' keys the auditor trusts; given, a cosignature under any
    other key is a failure).

    Returns the report (every failure found; ``intact`` when none). Raises ``BundleMalformed``
    when ``path`` is not a bundle (nothing checked, nothing written), ``ConfigurationError``
    when no key is given or none is for the bundle's log. ``jobs``: processes checking
    ``entries.jsonl`` (default: see :data:`PARALLEL_MIN_BYTES`; 1 checks in
    this process).
    """
    if not verifiers:
        raise ConfigurationError("no verifier key given")
    try:
        witnesses = {CosignerVerifier.from_verifier_key(k).verifier_key() for k in witness_keys}
    except CryptoError as exc:
        raise ConfigurationError(f"--witness-key: {exc}") from exc
    bundle = _Zip(Path(path))
    try:
        run = _Verification(bundle, list(verifiers), jobs, progress)
        run.witness_keys = witnesses
        return run.run()
    finally:
        bundle.close()


class _Verification:
    def __init__(
        self,
        bundle: _Zip,
        verifiers: list[NoteVerifier],
        jobs: int | None,
        progress: Progress | None,
    ) -> None:
        self.bundle = bundle
        self.verifiers = verifiers
        self.jobs = jobs
        self.progress = progress
        self.report = BundleReport(file=str(bundle.path))
        self.fail = self.report.fail
        self.trusted: list[NoteVerifier] = []
        self.checkpoint_text: str | None = None
        self.size = 0
        self.root = b""
        self.files: dict[str, str] = {}
        self.tlog_unused: set[str] = set()
        self.version = 2
        self.erased: list[tuple[int, str | None]] = []
        self.evidence: _EvidenceCheck | None = None
        self.witness_keys: set[str] = set()
        """The witness keys the auditor trusts (none given: cosignatures are checked under the
        keys the bundle names, and the report says so)."""

    # -- 2. the manifest and its signature

    def run(self) -> BundleReport:
        if not self.bundle.has(MANIFEST):
            raise BundleMalformed(f"{self.bundle.path} is not an evidence bundle: no {MANIFEST}")
        manifest_bytes = self.bundle.read(MANIFEST)
        sig_text: str | None = None
        if self.bundle.has(MANIFEST_SIG):
            sig_text = self._text(MANIFEST_SIG, MANIFEST_SIG_CHECK)
        else:
            self.fail(MANIFEST_SIG, MANIFEST_SIG_CHECK, "the bundle has no manifest.sig")
        parsed = self._parse_json(MANIFEST, manifest_bytes, MANIFEST_CHECK)
        sig_lines = _sig_text_lines(sig_text)
        # The log the bundle is of: the one the manifest names, or else the one its signature
        # names, whichever the auditor holds a key for (a mismatch is a failure below).
        named = [parsed.get("origin") if isinstance(parsed, dict) else None]
        named.append(sig_lines[1] if sig_lines is not None else None)
        candidates = [o for o in named if isinstance(o, str) and o]
        if not candidates:
            self.fail(MANIFEST, MANIFEST_CHECK, "no log origin to check the bundle against")
            return self.report
        ours = {v.name for v in self.verifiers}
        origin = next((o for o in candidates if o in ours), candidates[0])
        self.report.origin = origin
        self.trusted = self._trusted_keys(origin)
        listed = self._verifier_keys(origin)
        self._check_manifest_sig(sig_text, sig_lines, origin, manifest_bytes, listed)
        manifest = self._manifest(parsed, origin)
        if manifest is None:
            self._check_files(None)
            return self.report
        if sig_lines is not None and sig_lines[0] != manifest.raw.get("format"):
            self.fail(
                MANIFEST_SIG,
                MANIFEST_SIG_CHECK,
                "signs a bundle of another format version than the manifest's",
                expected=_show(manifest.raw.get("format")),
                found=sig_lines[0],
            )
        self._check_files(manifest.files)
        self._check_checkpoint(manifest)
        # v2: the writer keys come from the system log's records (check 8 opens them), which
        # the entries' signatures (check 5) are checked against.
        self.evidence = _EvidenceCheck(self, manifest) if self.version >= 2 else None
        self._check_entries(manifest)
        self._check_consistency()
        if self.evidence is not None:
            self.evidence.run_checks()
        return self.report

    def _text(self, name: str, check: str) -> str | None:
        try:
            return self.bundle.read(name).decode("utf-8")
        except UnicodeDecodeError:
            self.fail(name, check, "the file is not UTF-8")
            return None

    def _parse_json(self, name: str, raw: bytes, check: str) -> Any:
        """The file's JSON value, or None (and a failure); a failure too if not canonical."""
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.fail(name, check, f"the file is not JSON: {exc}")
            return None
        try:
            canonical = canonicalize(value) == raw
        except CanonicalizationError:
            canonical = False
        if not canonical:
            self.fail(name, check, "the file is not canonical JSON (RFC 8785)")
        return value

    def _trusted_keys(
        self, origin: str, rotations: re.Pattern[str] = _ROTATION_NAME, *, what: str = ""
    ) -> list[NoteVerifier]:
        """The auditor's keys for ``origin``, plus each key a trusted key certified by a rotation
        statement of ``rotations/`` (oldest first; ``rotations``: where the statements are)."""
        trusted = [v for v in self.verifiers if v.name == origin]
        if not trusted:
            names = ", ".join(sorted({v.name for v in self.verifiers}))
            what = what or "the bundle's log"
            raise ConfigurationError(
                f"none of your verifier keys is for {what} {origin!r} "
                f"(yours: {names}): nothing can be checked"
            )
        numbered: dict[int, str] = {}
        for name in self.bundle.infos:
            m = rotations.fullmatch(name)
            if m is not None:
                numbered[int(m.group(1))] = name
        if sorted(numbered) != list(range(len(numbered))):
            self.fail(
                rotations.pattern.split("(")[0],
                ROTATION,
                "the rotation statements are not numbered 0, 1, 2, … without a gap",
                expected=list(range(len(numbered))).__repr__()[:80],
                found=sorted(numbered).__repr__()[:80],
            )
        for i in sorted(numbered):
            name = numbered[i]
            note = self._text(name, ROTATION)
            if note is None:
                continue
            try:
                rotation = parse_rotation(parse_note(note).text)
            except CryptoError as exc:
                self.fail(name, ROTATION, f"not a key rotation statement: {exc}")
                continue
            if rotation.origin != origin:
                self.fail(
                    name,
                    ROTATION,
                    "rotates a key of another log",
                    expected=origin,
                    found=rotation.origin,
                )
                continue
            if rotation.old not in trusted:
                continue  # history before the key you trust: it certifies nothing for you
            try:
                open_rotation(note, rotation.old)
            except CryptoError as exc:
                self.fail(name, ROTATION, f"does not certify its new key: {exc}")
                continue
            if rotation.new not in trusted:
                trusted.append(rotation.new)
                self.report.certified_keys.append(rotation.new.verifier_key())
        return trusted

    def _verifier_keys(self, origin: str) -> list[NoteVerifier]:
        if not self.bundle.has(VERIFIER_KEYS_FILE):
            self.fail(VERIFIER_KEYS_FILE, VERIFIER_KEYS, "the bundle has no verifier-keys file")
            return []
        text = self._text(VERIFIER_KEYS_FILE, VERIFIER_KEYS) or ""
        keys: list[NoteVerifier] = []
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                key = NoteVerifier.from_verifier_key(line)
            except CryptoError as exc:
                self.fail(VERIFIER_KEYS_FILE, VERIFIER_KEYS, f"line {number}: {exc}")
                continue
            if key.name != origin:
                self.fail(
                    VERIFIER_KEYS_FILE,
                    VERIFIER_KEYS,
                    f"line {number}: a key of another log",
                    expected=origin,
                    found=key.name,
                )
            keys.append(key)
        if not keys:
            self.fail(VERIFIER_KEYS_FILE, VERIFIER_KEYS, "the file lists no key")
        return keys

    def _check_manifest_sig(
        self,
        sig_text: str | None,
        lines: list[str] | None,
        origin: str,
        manifest_bytes: bytes,
        listed: list[NoteVerifier],
    ) -> None:
        if sig_text is None:
            return
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        if lines is None:
            self.fail(
                MANIFEST_SIG,
                MANIFEST_SIG_CHECK,
                f"the note's text is not the three lines {BUNDLE_FORMAT} / origin / SHA-256",
            )
            return
        if lines[1] != origin:
            self.fail(
                MANIFEST_SIG,
                MANIFEST_SIG_CHECK,
                "signs another origin",
                expected=origin,
                found=lines[1],
            )
        if lines[2] != digest:
            self.fail(
                MANIFEST_SIG,
                MANIFEST_SIG_CHECK,
                "names another manifest.json: its SHA-256 is not the one signed",
                expected=digest,
                found=lines[2][:64],
            )
        try:
            opened = open_note(sig_text, self.trusted)
        except CryptoError as exc:
            self.fail(MANIFEST_SIG, MANIFEST_SIG_CHECK, f"does not open under your key(s): {exc}")
            return
        signers = [v for v in opened.verified if v.name == origin]
        self.report.manifest_signed_by = [v.verifier_key() for v in signers]
        if listed and not any(v in listed for v in signers):
            self.fail(
                MANIFEST_SIG,
                MANIFEST_SIG_CHECK,
                "signed by a key the bundle's verifier-keys does not list",
                expected=None,
                found=signers[0].verifier_key() if signers else None,
            )

    def _manifest(self, value: Any, origin: str) -> _Manifest | None:
        """The manifest's fields checked one by one; None if too broken to go on."""

        def bad(key: str, message: str, found: Any = None) -> None:
            self.fail(
                MANIFEST,
                MANIFEST_CHECK,
                f"{key}: {message}",
                None,
                expected=None,
                found=_show(found),
            )

        if not isinstance(value, dict):
            if value is not None:
                bad("/", "not a JSON object")
            return None
        report = self.report
        if value.get("origin") != origin:
            self.fail(
                MANIFEST,
                MANIFEST_CHECK,
                "origin: not the origin the manifest is signed for",
                expected=origin,
                found=_show(value.get("origin")),
            )
        if value.get("format") not in BUNDLE_FORMATS:
            self.fail(
                MANIFEST,
                MANIFEST_CHECK,
                "format: not an evidence bundle of version 1 or 2",
                expected=BUNDLE_FORMAT,
                found=_show(value.get("format")),
            )
        self.version = 1 if value.get("format") == BUNDLE_FORMAT_V1 else 2
        report.format = _str_or_none(value.get("format"))
        for key, kind in (
            ("log", str),
            ("generated_at", str),
            ("query", dict),
            ("generated_by", dict),
            ("files", dict),
        ):
            if not isinstance(value.get(key), kind):
                bad(key, f"missing or not {'a string' if kind is str else 'an object'}")
        report.log = value.get("log") if isinstance(value.get("log"), str) else None
        report.query = value.get("query")
        report.generated_at = _str_or_none(value.get("generated_at"))
        report.generated_by = value.get("generated_by")
        profile = value.get("profile")
        if profile not in PROFILES:
            bad("profile", "not one of " + ", ".join(PROFILES), profile)
        report.profile = _str_or_none(profile)
        selection = value.get("selection")
        if selection not in SELECTIONS:
            bad("selection", "not one of " + ", ".join(SELECTIONS), selection)
            selection = None
        report.selection = selection
        tree_size = value.get("tree_size")
        root = _b64_field(value.get("root"))
        files = value.get("files")
        if type(tree_size) is not int or tree_size < 0:
            bad("tree_size", "not a non-negative integer", tree_size)
        if root is None or len(root) != HASH_SIZE:
            bad("root", "not the base64 of a 32-byte hash", value.get("root"))
        good_files = isinstance(files, dict) and all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in files.values()
        )
        if isinstance(files, dict) and not good_files:
            bad("files", "a digest is not 64 lowercase hex digits")
        if type(tree_size) is not int or tree_size < 0 or root is None or len(root) != HASH_SIZE:
            return None
        report.tree_size = tree_size
        report.root = _b64(root)
        listed = {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}
        return _Manifest(origin, tree_size, root, selection, listed if good_files else {}, value)

    # -- 3. every file's digest

    def _check_files(self, files: dict[str, str] | None) -> None:
        names = [n for n in self.bundle.infos if n not in (MANIFEST, MANIFEST_SIG)]
        for name in names:
            if not _is_bundle_file(name):
                self.fail(name, FILES, "not a file an evidence bundle may hold")
        if files is None:
            return
        for name in (MANIFEST, MANIFEST_SIG):
            if name in files:
                self.fail(MANIFEST, FILES, f"files names {name}, which it cannot hash")
        for name in sorted(set(files) - set(self.bundle.infos)):
            self.fail(name, FILES, "named in the manifest, missing from the bundle")
        self.files = files
        for name in names:
            if name not in files:
                self.fail(name, FILES, "in the bundle, not named in the manifest's files")
            elif name != ENTRIES and not _TLOG_PROOF_NAME.fullmatch(name):
                self._compare_digest(name)  # entries and proofs: when they are read

    def _compare_digest(self, name: str) -> None:
        expected = self.files.get(name)
        if expected is None:
            return
        found = self.bundle.digest(name)
        self.report.files_checked += 1
        if found != expected:
            self.fail(
                name, FILES, "its SHA-256 is not the manifest's", expected=expected, found=found
            )

    # -- 4. the checkpoint

    def _check_checkpoint(self, manifest: _Manifest) -> None:
        self.size, self.root = manifest.tree_size, manifest.root
        if not self.bundle.has(CHECKPOINT_FILE):
            self.fail(CHECKPOINT_FILE, CHECKPOINT, "the bundle has no checkpoint")
            return
        text = self._text(CHECKPOINT_FILE, CHECKPOINT)
        if text is None:
            return
        self.checkpoint_text = text
        try:
            checkpoint = open_checkpoint(text, self.trusted)
        except CryptoError as exc:
            self.fail(
                CHECKPOINT_FILE,
                CHECKPOINT,
                f"does not open under your key(s) for {manifest.origin!r}: {exc}; the proofs "
                "are checked against the manifest's size and root",
            )
            return
        self.report.checkpoint_signed_by = [
            v.verifier_key() for v in self.trusted if _opens(text, v)
        ]
        self._compare_checkpoint(checkpoint, manifest)
        self.size, self.root = checkpoint.size, bytes(checkpoint.root_hash)

    def _compare_checkpoint(self, checkpoint: Checkpoint, manifest: _Manifest) -> None:
        for what, signed, stated in (
            ("origin", checkpoint.origin, manifest.origin),
            ("tree_size", checkpoint.size, manifest.tree_size),
            ("root", _b64(checkpoint.root_hash), _b64(manifest.root)),
        ):
            if signed != stated:
                self.fail(
                    MANIFEST,
                    CHECKPOINT,
                    f"the manifest's {what} is not the signed checkpoint's",
                    expected=signed,
                    found=stated,
                )

    # -- 5 and 6. the entries and the selection's proof

    def _check_entries(self, manifest: _Manifest) -> None:
        report = self.report
        raw = manifest.raw
        selection = manifest.selection
        population = self._range(raw, selection)
        window = self._window(raw, population)
        sample = self._sample(raw, selection)
        conversations = self._conversations(raw, selection)
        self._check_proof_files(selection)
        if not self.bundle.has(ENTRIES):
            self.fail(ENTRIES, COUNT, "the bundle has no entries.jsonl")
            return
        folder = _RangeFolder(self, population) if selection == "range" else None
        chains: dict[str, int | None] = {}
        seen_seqs: list[int] = []
        previous: int | None = None
        first: tuple[int | None, str] | None = None
        last: tuple[int | None, str] | None = None
        params = _ScanParams(
            manifest.origin,
            links=selection == "entries",
            keep_leaves=selection in ("entries", "sample"),
            fold_from=population[0] if folder is not None and population is not None else None,
            no_payloads=raw.get("profile") == NO_PAYLOAD_PROFILE,
            window=window,
            writer_keys=self._writer_keys(),
        )
        for scan in _scans(self.bundle, params, self.jobs, self.progress):
            report.absorb(scan.failures, scan.warnings, scan.verified, scan.withheld)
            report.writer_signatures += scan.writer_signed
            self.erased.extend(scan.erased)
            if not scan.seqs:
                continue
            report.entries += len(scan.seqs)
            if first is None:
                first = (scan.seqs[0], scan.first_leaf)
            last = (scan.seqs[-1], scan.last_leaf)
            if folder is not None:
                folder.add(scan.seqs, scan.tiles)
            if folder is not None and previous is not None and folder.contiguous:
                previous = report.last_seq = scan.seqs[-1]  # in order: checked by the folder
                continue
            for i, seq in enumerate(scan.seqs):
                if seq is not None:
                    if previous is not None and seq <= previous:
                        self.fail(
                            ENTRIES,
                            ORDER,
                            f"seq {seq} follows seq {previous}: seqs must strictly increase",
                            seq,
                            expected=f"> {previous}",
                            found=seq,
                        )
                    previous = seq
                    if report.first_seq is None:
                        report.first_seq = seq
                    report.last_seq = seq
                    if selection in ("entries", "sample"):
                        self._check_tlog_proof(seq, scan.leaves[i])
                    if selection == "sample":
                        seen_seqs.append(seq)
                    if selection == "entries":
                        self._check_link(seq, scan.links[i], conversations, chains)
        self._compare_digest(ENTRIES)
        if folder is not None:
            folder.finish()
        if selection in ("entries", "sample"):
            self._unused_tlog_proofs()
        if selection == "sample" and population is not None and sample is not None:
            self._check_sample(population, sample, seen_seqs)
        if selection == "entries" and conversations is not None:
            for conversation in conversations:
                if conversation not in chains:
                    self.fail(
                        MANIFEST,
                        CONVERSATIONS,
                        f"conversation {conversation!r} is listed, but no entry of it is here",
                    )
        self._check_count(raw, first, last)

    def _writer_keys(self) -> tuple[WriterKey, ...]:
        """Version 2: the writer keys and revocation times the system log's records prove
        (``erasures/writer-keys.jsonl``); ``writer-keys.json`` only restates them and is not
        read. Version 1 (no records): the keys of ``writer-keys.json``. None found: a signed
        entry fails as signed by an unknown key."""
        if self.evidence is not None:
            return tuple(self.evidence.writer_keys())
        if not self.bundle.has(WRITER_KEYS_FILE):
            return ()
        raw = self.bundle.read(WRITER_KEYS_FILE)
        doc = self._parse_json(WRITER_KEYS_FILE, raw, WRITER_SIGNATURE)
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            self.fail(WRITER_KEYS_FILE, WRITER_SIGNATURE, 'not {"keys": [...]}')
            return ()
        try:
            return tuple(writer_key_from_json(k) for k in keys)
        except WriterSignatureInvalid as exc:
            self.fail(WRITER_KEYS_FILE, WRITER_SIGNATURE, str(exc))
            return ()

    def _range(self, raw: dict[str, Any], selection: str | None) -> tuple[int, int] | None:
        value = raw.get("range")
        if selection == "entries":
            if value is not None:
                self.fail(MANIFEST, MANIFEST_CHECK, "range: must be null for entries", None)
            return None
        if selection is None:
            return None
        start = value.get("start") if isinstance(value, dict) else None
        end = value.get("end") if isinstance(value, dict) else None
        if (
            not isinstance(value, dict)
            or set(value) != {"start", "end"}
            or type(start) is not int
            or type(end) is not int
            or not 0 <= start < end <= self.size
        ):
            self.fail(
                MANIFEST,
                RANGE,
                f"range: not {{start, end}} with 0 <= start < end <= tree_size ({self.size})",
                None,
                expected=None,
                found=_show(value),
            )
            return None
        self.report.range = (start, end)
        return start, end

    def _window(self, raw: dict[str, Any], population: tuple[int, int] | None) -> _Window | None:
        """The time window of a range or sample exported for ``from_time``/``to_time``."""
        query = raw.get("query")
        if population is None or not isinstance(query, dict):
            return None
        texts = (query.get("from_time"), query.get("to_time"))
        if texts == (None, None):
            return None
        times = [_instant(t) for t in texts]
        for key, text, at in zip(("from_time", "to_time"), texts, times, strict=True):
            if text is not None and at is None:
                self.fail(
                    MANIFEST,
                    TIME_WINDOW,
                    f"query.{key} is not an RFC 3339 time with its offset",
                    found=_show(text),
                )
                return None
        from_text, to_text = (t if isinstance(t, str) else None for t in texts)
        self.report.time_window = (from_text, to_text)
        start, end = population
        return _Window(start, end, self.size, from_text, to_text, times[0], times[1])

    def _sample(self, raw: dict[str, Any], selection: str | None) -> tuple[int, str] | None:
        value = raw.get("sample")
        if selection != "sample":
            if value is not None:
                self.fail(MANIFEST, MANIFEST_CHECK, f"sample: must be null for {selection}")
            return None
        size = value.get("size") if isinstance(value, dict) else None
        seed = value.get("seed") if isinstance(value, dict) else None
        if (
            not isinstance(value, dict)
            or value.get("algorithm") != SAMPLE_ALGORITHM
            or type(size) is not int
            or size < 0
            or type(seed) is not str
        ):
            self.fail(
                MANIFEST,
                SAMPLE,
                f"sample: not {{algorithm: {SAMPLE_ALGORITHM}, size, seed}}",
                None,
                expected=None,
                found=_show(value),
            )
            return None
        self.report.sample_size, self.report.sample_seed = size, seed
        return size, seed

    def _conversations(self, raw: dict[str, Any], selection: str | None) -> list[str] | None:
        value = raw.get("conversations")
        if selection != "entries":
            if value is not None:
                self.fail(MANIFEST, MANIFEST_CHECK, f"conversations: must be null for {selection}")
            return None
        if (
            not isinstance(value, list)
            or not all(type(c) is str for c in value)
            or len(set(value)) != len(value)
        ):
            self.fail(
                MANIFEST,
                CONVERSATIONS,
                "conversations: not a list of distinct conversation ids",
                None,
                expected=None,
                found=_show(value),
            )
            return None
        self.report.conversations = list(value)
        return list(value)

    def _check_proof_files(self, selection: str | None) -> None:
        tlog = [n for n in self.bundle.infos if _TLOG_PROOF_NAME.fullmatch(n)]
        self.tlog_unused = set(tlog)
        if selection == "range":
            for name in tlog:
                self.fail(name, RANGE_PROOF, "a range bundle holds no per-entry tlog-proof")
                self._compare_digest(name)
            self.tlog_unused = set()
        elif self.bundle.has(RANGE_PROOF_FILE):
            self.fail(RANGE_PROOF_FILE, INCLUSION, f"a {selection} bundle holds no range proof")

    def _check_tlog_proof(self, seq: int, leaf: bytes) -> None:
        name = f"proofs/{seq}.tlog-proof"
        if not self.bundle.has(name):
            self.fail(name, INCLUSION, "the entry has no tlog-proof in the bundle", seq)
            return
        self.tlog_unused.discard(name)
        text = self._text(name, INCLUSION)
        self._compare_digest(name)
        if text is None:
            return
        try:
            index, hashes, checkpoint = parse_tlog_proof(text)
        except CryptoError as exc:
            self.fail(name, INCLUSION, f"not a c2sp.org/tlog-proof: {exc}", seq)
            return
        if index != seq:
            self.fail(
                name,
                INCLUSION,
                "the proof's index is not the entry's seq",
                seq,
                expected=seq,
                found=index,
            )
        if self.checkpoint_text is not None and checkpoint != self.checkpoint_text:
            self.fail(
                name,
                INCLUSION,
                "the proof's checkpoint is not, byte for byte, the bundle's checkpoint",
                seq,
            )
        try:
            verify_inclusion(leaf, seq, self.size, hashes, self.root)
        except CryptoError as exc:
            self.fail(name, INCLUSION, f"the entry is not proven in the checkpoint: {exc}", seq)

    def _unused_tlog_proofs(self) -> None:
        for name in sorted(self.tlog_unused):
            self.fail(name, INCLUSION, "a tlog-proof for a seq that entries.jsonl does not hold")
            self._compare_digest(name)

    def _check_link(
        self,
        seq: int,
        link: tuple[str | None, bool, Any],
        conversations: list[str] | None,
        chains: dict[str, int | None],
    ) -> None:
        conversation, present, value = link
        if conversation is None:
            self.fail(ENTRIES, CONVERSATIONS, "the entry bytes name no conversation", seq)
            return
        if conversations is not None and conversation not in conversations:
            self.fail(
                ENTRIES,
                CONVERSATIONS,
                "the entry is of a conversation the manifest does not list",
                seq,
                expected=None,
                found=conversation,
            )

        def fail(check: str, message: str, expected: Shown = None, found: Shown = None) -> None:
            self.fail(ENTRIES, check, message, seq, expected=expected, found=found)

        entry = {"conversation_prev": value} if present else {}
        check_back_link(
            entry,
            chains.get(conversation),
            fail,
            where=f"conversation {conversation!r} in the bundle",
        )
        chains[conversation] = seq

    def _check_sample(
        self, population: tuple[int, int], sample: tuple[int, str], seen: list[int]
    ) -> None:
        start, end = population
        size, seed = sample
        try:
            drawn = sample_seqs(self.root, seed, start, end, size)
        except ValueError as exc:
            self.fail(MANIFEST, SAMPLE, f"the sample cannot be drawn: {exc}")
            return
        expected = {start, end - 1, *drawn}
        found = set(seen)
        for seq in sorted(expected - found):
            why = "drawn by the sample" if seq in drawn else "the population's first or last"
            self.fail(ENTRIES, SAMPLE, f"seq {seq} is {why}, but not in the bundle", seq)
        for seq in sorted(found - expected):
            self.fail(
                ENTRIES,
                SAMPLE,
                f"seq {seq} is in the bundle, but {SAMPLE_ALGORITHM} does not draw it",
                seq,
            )

    def _check_count(
        self,
        raw: dict[str, Any],
        first: tuple[int | None, str] | None,
        last: tuple[int | None, str] | None,
    ) -> None:
        count = raw.get("count")
        if count != self.report.entries or type(count) is not int:
            self.fail(
                MANIFEST,
                COUNT,
                "count is not the number of lines of entries.jsonl",
                expected=self.report.entries,
                found=_show(count),
            )
        for key, line in ((FIRST, first), (LAST, last)):
            stated = raw.get(key)
            actual = None if line is None else {"seq": line[0], "leaf_hash": line[1]}
            if stated != actual:
                self.fail(
                    MANIFEST,
                    key,
                    f"{key} is not the {key} line of entries.jsonl",
                    expected=_show(actual),
                    found=_show(stated),
                )

    # -- 7. consistency.json

    def _check_consistency(self) -> None:
        if not self.bundle.has(CONSISTENCY_FILE):
            return
        value = self._parse_json(CONSISTENCY_FILE, self.bundle.read(CONSISTENCY_FILE), CONSISTENCY)

        def fail(message: str, expected: Shown = None, found: Shown = None) -> None:
            self.fail(CONSISTENCY_FILE, CONSISTENCY, message, None, expected=expected, found=found)

        if not isinstance(value, dict):
            if value is not None:
                fail("not a JSON object")
            return
        note, from_size, to_size = value.get("from"), value.get("from_size"), value.get("to_size")
        hashes = (
            [_b64_field(h) for h in value.get("hashes") or []]
            if isinstance(value.get("hashes"), list)
            else None
        )
        if (
            type(note) is not str
            or type(from_size) is not int
            or type(to_size) is not int
            or hashes is None
            or any(h is None for h in hashes)
        ):
            fail("not {from, from_size, to_size, hashes} of their types")
            return
        if to_size != self.size:
            fail("to_size is not the checkpoint's size", self.size, to_size)
        try:
            earlier = open_checkpoint(note, self.trusted)
        except CryptoError as exc:
            fail(f"the earlier checkpoint does not open under your key(s): {exc}")
            return
        if earlier.origin != self.report.origin:
            fail("the earlier checkpoint is of another log", self.report.origin, earlier.origin)
        if earlier.size != from_size:
            fail("from_size is not the earlier checkpoint's size", earlier.size, from_size)
        try:
            verify_consistency(
                earlier.size,
                self.size,
                [h for h in hashes if h is not None],
                earlier.root_hash,
                self.root,
            )
        except CryptoError as exc:
            fail(f"the earlier checkpoint is not a prefix of this one: {exc}")
            return
        self.report.consistency_from = earlier.size


class _RangeFolder:
    """Check 6 for a range: every seq of ``[s, e)`` in order, folded onto ``left`` (the frontier
    at ``s``); at the end the root at ``e`` must lead to the signed root."""

    def __init__(self, run: _Verification, population: tuple[int, int] | None) -> None:
        self.run = run
        self.population = population
        self.frontier: list[bytes] | None = None
        self.consistency: list[bytes] = []
        self.expected = population[0] if population else 0
        self.folded = 0
        self.contiguous = False
        """Whether the last block's seqs were exactly the next ones of the range."""
        if population is not None:
            self._read_proof(population)

    def _read_proof(self, population: tuple[int, int]) -> None:
        start, end = population
        run = self.run
        if not run.bundle.has(RANGE_PROOF_FILE):
            run.fail(RANGE_PROOF_FILE, RANGE_PROOF, "the range bundle has no proofs/range.json")
            return
        value = run._parse_json(RANGE_PROOF_FILE, run.bundle.read(RANGE_PROOF_FILE), RANGE_PROOF)

        def fail(message: str, expected: Shown = None, found: Shown = None) -> None:
            run.fail(RANGE_PROOF_FILE, RANGE_PROOF, message, None, expected=expected, found=found)

        if not isinstance(value, dict):
            if value is not None:
                fail("not a JSON object")
            return
        for key, want in (("start", start), ("end", end), ("tree_size", run.size)):
            if value.get(key) != want or type(value.get(key)) is not int:
                fail(f"{key} is not the manifest's", want, _show(value.get(key)))
        left = value.get("left")
        consistency = value.get("consistency")
        lefts = [_b64_field(h) for h in left] if isinstance(left, list) else None
        proof = [_b64_field(h) for h in consistency] if isinstance(consistency, list) else None
        if lefts is None or proof is None or any(h is None for h in [*lefts, *proof]):
            fail("left and consistency must be lists of base64 hashes")
            return
        tiles = len(range_nodes(0, start))
        if len(lefts) != tiles or any(len(h or b"") != HASH_SIZE for h in lefts):
            fail(
                f"left must be the {tiles} subtree hashes that tile [0, {start})", tiles, len(lefts)
            )
            return
        self.frontier = [h for h in lefts if h is not None]
        self.consistency = [h for h in proof if h is not None]

    def add(self, seqs: list[int | None], tiles: list[tuple[int, int, bytes]]) -> None:
        """The next block: its seqs must continue the range; its subtrees go onto the frontier."""
        run = self.run
        self.contiguous = False
        if self.population is None:
            return
        start, end = self.population
        if seqs == list(range(self.expected, self.expected + len(seqs))) and (
            self.expected + len(seqs) <= end
        ):
            self.expected += len(seqs)
            self.contiguous = True
        for seq in [] if self.contiguous else seqs:
            if seq != self.expected:
                if seq is None:
                    run.fail(ENTRIES, RANGE, f"the line for seq {self.expected} is unreadable")
                elif self.expected >= end:
                    run.fail(ENTRIES, RANGE, f"seq {seq} is after the range [{start}, {end})", seq)
                else:
                    run.fail(
                        ENTRIES,
                        RANGE,
                        f"the range [{start}, {end}) does not continue here: an entry is "
                        "missing, added or out of order",
                        seq,
                        expected=self.expected,
                        found=seq,
                    )
            self.expected = (seq if seq is not None else self.expected) + 1
        if self.frontier is not None:
            if self.folded + len(seqs) <= end - start:
                # Each tile is aligned to its size: one "leaf" of a tree of 2**level-leaf units.
                for _, index, tile in tiles:
                    self.frontier, _ = frontier_extend(self.frontier, index, [tile])
            else:
                self.frontier = None  # more lines than the range: the count fails below
        self.folded += len(seqs)

    def finish(self) -> None:
        run = self.run
        if self.population is None:
            return
        start, end = self.population
        if self.folded != end - start:
            run.fail(
                ENTRIES,
                RANGE,
                f"entries.jsonl holds {self.folded} entries, the range [{start}, {end}) has "
                f"{end - start}",
                None,
                expected=end - start,
                found=self.folded,
            )
            return
        if self.frontier is None:
            return
        root_at_end = frontier_root(self.frontier, end)
        try:
            verify_consistency(end, run.size, self.consistency, root_at_end, run.root)
        except CryptoError as exc:
            run.fail(
                RANGE_PROOF_FILE,
                RANGE_PROOF,
                f"the range's leaves folded onto left do not lead to the signed root: {exc}",
            )


# --- helpers -------------------------------------------------------------------------------------


# -- 8. (version 2) erasure records and witness cosignatures


class _EvidenceCheck:
    """Check 8: each erased payload of ``entries.jsonl`` is covered by a signed record of the
    tenant's system log, carried under ``erasures/`` and proven in its checkpoint (opened under
    the auditor's key for the system log); each cosignature of ``witnesses.json`` verifies."""

    def __init__(self, verification: _Verification, manifest: _Manifest) -> None:
        self.verification = verification
        self.bundle = verification.bundle
        self.fail = verification.fail
        self.manifest = manifest
        self.checkpoint: Checkpoint | None = None
        self.checkpoint_text: str | None = None
        self._opened: bool | None = None
        self.proofs = {n for n in self.bundle.infos if _ERASURE_PROOF_NAME.fullmatch(n)}
        """The tlog-proofs under ``erasures/`` no record has claimed yet."""

    def run_checks(self) -> None:
        self._check_erasures()
        for name in sorted(self.proofs):
            self.fail(name, ERASURE, "a tlog-proof for no record of erasures/")
        self._check_witnesses()

    def _section(self) -> tuple[str, int, int] | None:
        """The manifest's ``erasures`` (origin, tree_size, records), or None: absent (a
        failure) or null, or malformed (a failure, once)."""
        section = self.manifest.raw.get("erasures", "missing")
        if section == "missing" or section is None:
            return None
        origin, size, count = (section.get(k) if isinstance(section, dict) else None
                               for k in ("origin", "tree_size", "records"))  # fmt: skip
        if not isinstance(origin, str) or type(size) is not int or type(count) is not int:
            return None
        return origin, size, count

    def _opened_checkpoint(self) -> bool:
        """Open ``erasures/checkpoint`` under the auditor's key for the system log, once."""
        if self._opened is None:
            section = self._section()
            self._opened = False
            if section is not None:
                origin, size, _count = section
                trusted = self.verification._trusted_keys(
                    origin, _ERASURE_ROTATION_NAME, what="the system log of the records"
                )
                self._opened = self._open_checkpoint(trusted, origin, size)
        return self._opened

    # writer keys (issue 18)

    def writer_keys(self) -> list[WriterKey]:
        """The keys and revocation times ``erasures/writer-keys.jsonl`` proves: each line a
        ``ledger.writer_key.*`` record of the system log's ``keys`` stream, of this log, with
        its tlog-proof in ``erasures/checkpoint``. A line that fails is a ``writer_key``
        failure naming its system-log seq, and its key is left out."""
        stated = self.manifest.raw.get("erasures")
        count = stated.get("writer_key_records", 0) if isinstance(stated, dict) else 0
        if not self.bundle.has(WRITER_KEY_RECORDS):
            if count:
                self.fail(MANIFEST, WRITER_KEY, f"names {count} writer key records, none here")
            return []
        if not self._opened_checkpoint():
            self.fail(WRITER_KEY_RECORDS, WRITER_KEY, "the system log's checkpoint is not proven")
            return []
        lines = self.bundle.read(WRITER_KEY_RECORDS).split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        if len(lines) != count:
            self.fail(MANIFEST, WRITER_KEY, "writer_key_records: not the lines of "
                      f"{WRITER_KEY_RECORDS}", expected=len(lines), found=_show(count))  # fmt: skip
        opened: list[tuple[int, str, dict[str, Any]]] = []
        for number, line in enumerate(lines, start=1):
            found = self._system_record(
                line, number, WRITER_KEY_RECORDS, WRITER_KEY, KEY_RECORD_TYPES, KEYS_STREAM
            )
            if found is not None:
                opened.append(found)
        keys, problems = writer_keys_from_records(opened)
        for seq, problem in problems:
            self.fail(WRITER_KEY_RECORDS, WRITER_KEY, f"system log seq {seq}: {problem}", seq)
        return keys

    # erasures

    def _check_erasures(self) -> None:
        erased = self.verification.erased
        section = self.manifest.raw.get("erasures", "missing")
        if section == "missing":
            self.fail(MANIFEST, MANIFEST_CHECK, "erasures: missing (version 2)")
            section = None
        if section is None:
            if any(
                self.bundle.has(n)
                for n in (ERASURE_CHECKPOINT, ERASURE_RECORDS, WRITER_KEY_RECORDS)
            ):
                self.fail(MANIFEST, ERASURE, "erasures is null, but the bundle carries records")
            self._uncovered(erased, "the bundle carries no erasure record")
            return
        origin, size, count = (section.get(k) if isinstance(section, dict) else None
                               for k in ("origin", "tree_size", "records"))  # fmt: skip
        if not isinstance(origin, str) or type(size) is not int or type(count) is not int:
            self.fail(MANIFEST, MANIFEST_CHECK, "erasures: not {origin, tree_size, records}")
            self._uncovered(erased, "the bundle's erasure records cannot be read")
            return
        if not self._opened_checkpoint():
            self._uncovered(erased, "the erasure records' checkpoint does not verify")
            return
        records = self._records(count)
        covered: dict[str, list[tuple[int, str]]] = {}
        for record_type, record in records:
            for conversation in record["conversations"]:
                covered.setdefault(conversation, []).append((record["tree_size"], record_type))
        by = {"by_erasure": 0, "by_retention": 0}
        for seq, conversation in erased:
            cover = [t for limit, t in covered.get(conversation or "", []) if seq < limit]
            if not cover:
                self.fail(
                    ENTRIES,
                    ERASURE,
                    "erased payload without a valid erasure record",
                    seq,
                    expected=f"a signed record naming conversation {conversation!r}",
                    found="none in erasures/records.jsonl",
                )
                continue
            retained = cover[-1] == RECORD_TYPES[1]
            by["by_retention" if retained else "by_erasure"] += 1
        if erased or records:
            self.verification.report.erasures = {**by, "records": len(records)}

    def _uncovered(self, erased: list[tuple[int, str | None]], why: str) -> None:
        for seq, _conversation in erased:
            self.fail(
                ENTRIES, ERASURE, f"erased payload without a valid erasure record: {why}", seq
            )

    def _open_checkpoint(self, trusted: list[NoteVerifier], origin: str, size: int) -> bool:
        if not self.bundle.has(ERASURE_CHECKPOINT):
            self.fail(ERASURE_CHECKPOINT, ERASURE, "the bundle has no erasures/checkpoint")
            return False
        text = self.verification._text(ERASURE_CHECKPOINT, ERASURE)
        if text is None:
            return False
        try:
            checkpoint = open_checkpoint(text, trusted)
        except CryptoError as exc:
            self.fail(ERASURE_CHECKPOINT, ERASURE, f"does not open under your key(s): {exc}")
            return False
        if (checkpoint.origin, checkpoint.size) != (origin, size):
            self.fail(
                ERASURE_CHECKPOINT,
                ERASURE,
                "not the checkpoint the manifest names",
                expected=f"{origin} {size}",
                found=f"{checkpoint.origin} {checkpoint.size}",
            )
            return False
        self.checkpoint, self.checkpoint_text = checkpoint, text
        return True

    def _records(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        """The records of ``erasures/records.jsonl`` that check out: ``(type, payload)``."""
        if not self.bundle.has(ERASURE_RECORDS):
            self.fail(ERASURE_RECORDS, ERASURE, "the bundle has no erasures/records.jsonl")
            return []
        raw = self.bundle.read(ERASURE_RECORDS)
        lines = raw.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        found: list[tuple[str, dict[str, Any]]] = []
        for number, line in enumerate(lines, start=1):
            record = self._record(line, number)
            if record is not None:
                found.append(record)
        if len(lines) != count:
            self.fail(MANIFEST, ERASURE, "records: not the lines of erasures/records.jsonl",
                      expected=len(lines), found=count)  # fmt: skip
        return found

    def _record(self, line: bytes, number: int) -> tuple[str, dict[str, Any]] | None:
        """An erasure record line: a system-log record that names conversations and a size."""
        found = self._system_record(
            line, number, ERASURE_RECORDS, ERASURE, RECORD_TYPES, RECORD_STREAM
        )
        if found is None:
            return None
        seq, kind, record = found
        if (
            not isinstance(record.get("conversations"), list)
            or type(record.get("tree_size")) is not int
        ):
            what = f"line {number}: the record names no conversations and size"
            self.fail(ERASURE_RECORDS, ERASURE, what, seq)
            return None
        return kind, record

    def _system_record(  # noqa: PLR0911, PLR0917 - one return per way a line is refused
        self,
        line: bytes,
        number: int,
        file: str,
        check: str,
        types: tuple[str, ...],
        stream: str,
    ) -> tuple[int, str, dict[str, Any]] | None:
        """Line ``number`` of ``file`` checked as an entry of the system log: canonical JSON of
        five fields, its leaf hash, a record of ``types`` in ``stream`` of this log, its payload
        against its commitment, its tlog-proof in ``erasures/checkpoint``. ``(seq, type,
        payload)``, or None after a failure naming the seq."""
        assert self.checkpoint is not None
        where = f"{file} line {number}"

        def bad(message: str, seq: int | None = None) -> None:
            at = f"line {number}" if seq is None else f"line {number} (system log seq {seq})"
            self.fail(file, check, f"{at}: {message}", seq)

        try:
            value = orjson.loads(line)
            canonical = type(value) is dict and canonicalize(value) == line
            seq = value["seq"]
            entry = _b64_strict(str(value["entry_b64"]).encode())
            given_leaf = _b64_strict(str(value["leaf_hash"]).encode())
            data = _b64_strict(str(value["payload_b64"]).encode())
            salt = _b64_strict(str(value["payload_salt"]).encode())
            parsed = orjson.loads(entry)
            record = orjson.loads(data)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, CanonicalizationError):
            bad("not a record line (seq, leaf_hash, entry_b64, payload_b64, payload_salt)")
            return None
        if not canonical or set(value) != {"seq", "leaf_hash", "entry_b64", "payload_b64",
                                           "payload_salt"} or type(seq) is not int:  # fmt: skip
            bad("not canonical JSON of the five fields")
            return None
        name = f"erasures/proofs/{seq}.tlog-proof"
        self.proofs.discard(name)  # claimed, even if the record fails below
        leaf = leaf_hash(entry)
        if leaf != given_leaf:
            bad("SHA-256(0x00 || entry bytes) is not the leaf hash given", seq)
        event = parsed.get("event") if type(parsed) is dict else None
        committed = parsed.get("payload") if type(parsed) is dict else None
        kind = (event.get("type"), event.get("conversation")) if type(event) is dict else None
        if (
            type(parsed) is not dict
            or parsed.get("seq") != seq
            or self.checkpoint is None
            or parsed.get("origin") != self.checkpoint.origin
        ):
            bad("the entry bytes do not name this seq and the system log's origin", seq)
            return None
        if kind is None or kind[0] not in types or kind[1] != stream:
            bad(f"not a record of the system log's {stream} stream: {_show(kind)}", seq)
            return None
        try:
            commitment = _b64_strict(str(committed["commitment"]).encode())  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            commitment = b""
        if not commitment_matches(commitment, salt, data):
            bad("SHA-256(salt || payload bytes) is not the entry's commitment", seq)
            return None
        if type(record) is not dict or record.get("log") != self.verification.report.log:
            bad("the record is not of this log", seq)
            return None
        if not self._proven(name, seq, leaf, where, check):
            return None
        return seq, str(kind[0]), record

    def _proven(self, name: str, seq: int, leaf: bytes, where: str, check: str) -> bool:
        assert self.checkpoint is not None
        if not self.bundle.has(name):
            self.fail(name, check, f"{where}: the record has no tlog-proof", seq)
            return False
        text = self.verification._text(name, check)
        if text is None:
            return False
        try:
            index, hashes, note = parse_tlog_proof(text)
            if index != seq or note != self.checkpoint_text:
                raise NoteFormatError("not for this record and erasures/checkpoint")
            verify_inclusion(leaf, seq, self.checkpoint.size, hashes, self.checkpoint.root_hash)
        except CryptoError as exc:
            self.fail(name, check, f"the record is not proven in the system log: {exc}", seq)
            return False
        return True

    # witnesses

    def _check_witnesses(self) -> None:
        if not self.bundle.has(WITNESSES):
            return
        value = self.verification._parse_json(WITNESSES, self.bundle.read(WITNESSES), WITNESS)
        items = value.get("cosignatures") if isinstance(value, dict) else None
        if not isinstance(items, list):
            self.fail(WITNESSES, WITNESS, "not {cosignatures: [...]}")
            return
        notes = {
            "checkpoint": self.verification.checkpoint_text,
            ERASURE_CHECKPOINT: self.checkpoint_text,
        }
        for i, item in enumerate(items):
            where = f"cosignature {i}"
            if not isinstance(item, dict) or set(item) != {"checkpoint", "witness_key",
                                                           "cosignature"}:  # fmt: skip
                self.fail(
                    WITNESSES, WITNESS, f"{where}: not {{checkpoint, witness_key, cosignature}}"
                )
                continue
            note = notes.get(str(item["checkpoint"]))
            if note is None:
                self.fail(WITNESSES, WITNESS, f"{where}: names no verified checkpoint",
                          found=_show(item["checkpoint"]))  # fmt: skip
                continue
            try:
                witness = CosignerVerifier.from_verifier_key(str(item["witness_key"]))
                [cosigned] = open_cosignatures(note, str(item["cosignature"]), witness)
                size = parse_checkpoint(parse_note(note).text).size
            except (CryptoError, ValueError) as exc:
                self.fail(WITNESSES, WITNESS, f"{where}: the cosignature does not verify: {exc}")
                continue
            trusted = self.verification.witness_keys
            if trusted and witness.verifier_key() not in trusted:
                self.fail(
                    WITNESSES,
                    WITNESS,
                    f"{where}: by a witness key you did not name (--witness-key)",
                    found=witness.verifier_key(),
                )
                continue
            self.verification.report.witnesses.append(
                {
                    "checkpoint": item["checkpoint"],
                    "size": size,
                    "witness": witness.verifier_key(),
                    "timestamp": cosigned.timestamp,
                    "trusted": bool(trusted),
                }
            )


def _sig_text_lines(note: str | None) -> list[str] | None:
    """The three lines of ``manifest.sig``'s text (format, origin, hex SHA-256), or None."""
    if note is None:
        return None
    try:
        text = parse_note(note).text
    except CryptoError:
        return None
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "" or lines[0] not in BUNDLE_FORMATS:
        return None
    return lines[:3]


def _opens(note: str, verifier: NoteVerifier) -> bool:
    try:
        open_checkpoint(note, [verifier])
    except CryptoError:
        return False
    return True


def _b64_field(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return b64decode_canonical(value, "hash")
    except CryptoError:
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _show(value: Any) -> Shown:
    if value is None or isinstance(value, str) or (type(value) is int):
        return value if not isinstance(value, str) else value[:200]
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")[:200]
