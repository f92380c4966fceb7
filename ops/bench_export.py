"""Auditor export performance on a big log (the export path; separate from ops/bench_verify.py).

    .venv/bin/python ops/bench_export.py [--entries 1000000] [--runs 2] [--profile] [--keep]

In one fresh database (``ledger_benchv_<hex>`` on ``LEDGER_BENCH_DATABASE_URL``, an admin URL,
default the PostgreSQL on 127.0.0.1:5432; dropped at the end unless ``--keep``) it fills one log
with ``--entries`` small events (~0.6 KB entry, ~0.2 KB sealed payload: bench_verify's
``Filler`` with 40 bytes of text, one data key per 20-event conversation) straight through the
sequencer (5,000 a batch, one checkpoint each), vacuums and checkpoints it, then measures, in the
same run, each ``--runs`` times (the best run counts: other work shares this machine):

(a) the raw scan of the same rows: entries and payloads by primary-key range, 5,000 seqs a
    chunk, fetched and dropped in one process (bench_verify's ``bare_scan``);
(b) ``ledger export --profile soc2-population --format bundle`` of the whole log;
(c) the same with ``--format jsonl``;
(d) ``ledger verify-bundle`` of the bundle of (b), with the log's verifier keys
    (``--verifier-keys-file``, read from the database as ``GET /verifier-key`` serves them).

(b)-(d) each run the real CLI as a child process (``python -m ledger.cli``, with
``LEDGER_DATABASE_URL`` and ``LEDGER_MASTER_KEY`` in its environment): wall-clock from spawn to
exit (interpreter start-up included), the child's CPU seconds (``wait4``: it and the workers
it waited for), its peak RSS (``VmHWM``; when it has worker processes, the summed PSS of its
process tree if larger; polled every 10 ms), and how many cores the whole machine was busy
meanwhile (``/proc/stat``: PostgreSQL, the child, and anything else running). Each output is
checked: the bundle's manifest ``count``, the JSON Lines' line count and the entries
``verify-bundle`` checked must all be ``--entries``. ``--profile`` then runs (b)-(d) once more under
``python -m cProfile`` and prints each one's top functions by own time (the main thread only:
the exporter's read-ahead and write-behind threads and the verifier's worker processes are not
in it; those runs are not counted).

Targets (printed PASS/MISS): (b) and (c) >= 50,000 entries/s and >= 0.40 x the rate of (a);
(d) >= 100,000 entries/s; each under 300 MB peak RSS.
Exit 0 whatever the figures (a measurement), 2 if it could not run (including an export that
fails, a bundle that does not verify, or a count that is wrong: then the figures mean nothing).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench, bench_verify
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from bench import machine_busy_seconds, server_facts, tree_pids
from bench_verify import (
    ACTOR,
    MASTER_KEY,
    Filler,
    bare_scan,
    fresh_database,
    now,
    settle,
)
from sqlalchemy.exc import SQLAlchemyError

from ledger.services.admin.logs import create_log
from ledger.storage.db import make_engine, unit_of_work
from ledger.storage.keystore import KeyRing, verifier_keys

ROOT = Path(__file__).resolve().parents[1]
LOG = "export"
PROFILE = "soc2-population"
EXPORT_RATE = 50_000
EXPORT_RATIO = 0.40
VERIFY_RATE = 100_000
RSS_LIMIT_MB = 300
MB = 1 << 20
RSS_POLL_SECONDS = 0.01


class CannotRun(Exception):
    """The bench cannot produce meaningful figures (exit 2)."""


@dataclass
class Run:
    """One child process of the real CLI, run to its end."""

    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    processes: int
    returncode: int
    stdout: str
    stderr: str


def run_cli(args: list[str], env: dict[str, str], out_dir: Path, *, profile: Path | None) -> Run:
    """``python -m ledger.cli ARGS`` (under cProfile when ``profile``), timed from spawn to exit.

    Peak RSS: the child's ``VmHWM`` (``/proc/<pid>/status``), polled until it exits, or, when
    it has children of its own (``verify-bundle``'s worker processes), the largest sum of the
    PSS of its process tree seen, if larger (PSS: pages the forked workers share with their
    parent are counted once, not once per process). ``ru_maxrss`` would not do: Linux carries the
    RSS of the process that forked the child (this bench, with its fill behind it) over the
    exec into it. CPU seconds (user + system) are ``wait4``'s: the child and the children it
    waited for, exactly."""
    prefix = [sys.executable]
    if profile is not None:
        prefix += ["-m", "cProfile", "-o", str(profile)]
    stdout_path, stderr_path = out_dir / "child.stdout", out_dir / "child.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(  # returns once the exec succeeded
            [*prefix, "-m", "ledger.cli", *args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
        status_file = Path(f"/proc/{child.pid}/status")
        peak_kb, tree_peak_kb, processes = 0, 0, 1
        while True:
            peak_kb = max(peak_kb, vm_hwm_kb(status_file))
            pids = tree_pids(child.pid)
            if len(pids) > 1:
                processes = max(processes, len(pids))
                tree_peak_kb = max(tree_peak_kb, sum(pss_kb(pid) for pid in pids))
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(RSS_POLL_SECONDS)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=max(peak_kb, tree_peak_kb) * 1024 / MB,
        processes=processes,
        returncode=child.returncode,
        stdout=stdout_path.read_text(errors="replace"),
        stderr=stderr_path.read_text(errors="replace"),
    )


def pss_kb(pid: int) -> int:
    """A process's proportional set size, kB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def vm_hwm_kb(status_file: Path) -> int:
    """The process's peak resident set so far, kB (0 once it is gone or a zombie)."""
    try:
        for line in status_file.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cli_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "LEDGER_DATABASE_URL": url,
        "LEDGER_ORIGIN_PREFIX": "bench.test",
        "LEDGER_MASTER_KEY": base64.b64encode(MASTER_KEY).decode(),
    }


def export_args(fmt: str, output: Path) -> list[str]:
    return ["export", "--log", LOG, "--profile", PROFILE, "--format", fmt, "-o", str(output)]


def verify_args(bundle: Path, keys_file: Path) -> list[str]:
    return ["verify-bundle", str(bundle), "--verifier-keys-file", str(keys_file)]


def checked(what: str, run: Run) -> Run:
    if run.returncode != 0:
        raise CannotRun(
            f"{what} exited {run.returncode}:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
        )
    return run


def verified_count(run: Run) -> int:
    """The entries ``verify-bundle`` says it checked (its report's ``entries checked: N``)."""
    for line in run.stdout.splitlines():
        if "entries checked:" in line:
            return int(line.split("entries checked:")[1].split()[0])
    raise CannotRun(f"verify-bundle printed no entry count:\n{run.stdout[-2000:]}")


def bundle_count(path: Path) -> int:
    with zipfile.ZipFile(path) as z:
        count: int = json.loads(z.read("manifest.json"))["count"]
    return count


def line_count(path: Path) -> int:
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def profile_top(path: Path, limit: int = 18) -> str:
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(limit)
    text = out.getvalue()
    # From the column header on: the preamble names the file and the total.
    total = next((line for line in text.splitlines() if "function calls" in line), "")
    return total.strip() + "\n" + text[text.find("   ncalls") :]


class Row(TypedDict):
    step: str
    entries: int
    seconds: float
    per_s: float
    ratio: float | None
    """Rate over the raw scan's rate, for the exports."""
    cpu_seconds: float | None
    """The child's own CPU time (user + system)."""
    machine_cores_busy: float
    """Cores busy machine-wide during the step (PostgreSQL, the child, and anything else)."""
    peak_rss_mb: float | None
    """Of the worst run."""
    size_mb: float | None
    all_seconds: list[float]
    """Every run; the row's figures are the best one's."""


class Results(TypedDict, total=False):
    machine: dict[str, str]
    fill: dict[str, float]
    database_size: str
    rows: list[Row]
    checks: list[tuple[str, bool]]


class Args(argparse.Namespace):
    entries: int
    runs: int
    profile: bool
    keep: bool


def machine_facts(url: str) -> dict[str, str]:
    busy0, wall0 = machine_busy_seconds(), time.perf_counter()
    time.sleep(1.0)
    background = (machine_busy_seconds() - busy0) / (time.perf_counter() - wall0)
    facts = server_facts(url)
    return {
        "cpus": str(os.cpu_count()),
        "background_cores_busy": f"{background:.2f}",
        "load_avg_1m": f"{os.getloadavg()[0]:.2f}",
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        **{f"pg_{k}": v for k, v in facts.items()},
    }


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'step':<34} {'entries':>9} {'seconds':>8} {'entries/s':>10} {'x (a)':>6}"
        f" {'child CPU s':>11} {'cores busy':>10} {'peak RSS MB':>11} {'size MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        rss = "" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
        size = "" if r["size_mb"] is None else f"{r['size_mb']:.1f}"
        cpu = "" if r["cpu_seconds"] is None else f"{r['cpu_seconds']:.2f}"
        print(
            f"{r['step']:<34} {r['entries']:>9,} {r['seconds']:>8.2f} {r['per_s']:>10,.0f}"
            f" {ratio:>6} {cpu:>11} {r['machine_cores_busy']:>10.2f} {rss:>11} {size:>8}"
        )


def bench(args: Args) -> Results:
    results: Results = {}
    with fresh_database() as url, tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = Path(tmp)
        results["machine"] = machine_facts(url)
        m = results["machine"]
        print(
            f"machine: {m['cpus']} CPUs ({m['background_cores_busy']} cores busy before the run,"
            f" load avg {m['load_avg_1m']}); Python {m['python']}; {m['machine']}",
            flush=True,
        )
        print(
            f"PostgreSQL {m.get('pg_server_version', '?')}: shared_buffers="
            f"{m.get('pg_shared_buffers', '?')} synchronous_commit="
            f"{m.get('pg_synchronous_commit', '?')} fsync={m.get('pg_fsync', '?')}",
            flush=True,
        )
        engine = make_engine(url, pool_size=2)
        keys = KeyRing.from_master(MASTER_KEY)
        with unit_of_work(engine) as conn:
            log = create_log(conn, keys, LOG, origin_prefix="bench.test", actor=ACTOR, now=now())
        filler = Filler(engine, log, payload_bytes=40)
        t = filler.append(args.entries)
        results["fill"] = {"entries": args.entries, "seconds": t, "per_s": args.entries / t}
        print(
            f"fill: {args.entries:,} small entries (~0.6 KB entry, ~0.2 KB sealed payload)"
            f" through the sequencer in {t:.1f} s ({args.entries / t:,.0f}/s)",
            flush=True,
        )
        results["database_size"] = settle(url)
        with unit_of_work(engine) as conn:
            keys_file = work / "verifier-keys"
            keys_file.write_text("".join(k + "\n" for k in verifier_keys(conn, LOG)))
        engine.dispose()
        print(f"settled (VACUUM ANALYZE, CHECKPOINT): database {results['database_size']}")

        n = args.entries
        busy0 = machine_busy_seconds()
        scans = [bare_scan(url, LOG, n) for _ in range(args.runs)]
        busy = (machine_busy_seconds() - busy0) / sum(scans)
        scan = min(scans)
        raw_rate = n / scan
        rows: list[Row] = [
            {
                "step": "(a) raw scan, entries + payloads",
                "entries": n,
                "seconds": scan,
                "per_s": raw_rate,
                "ratio": 1.0,
                "cpu_seconds": None,
                "machine_cores_busy": busy,
                "peak_rss_mb": None,
                "size_mb": None,
                "all_seconds": scans,
            }
        ]
        print(
            f"(a) raw scan: {', '.join(f'{t:.2f}' for t in scans)} s; best"
            f" {raw_rate:,.0f} entries/s",
            flush=True,
        )

        env = cli_env(url)
        bundle, jsonl = work / "export.zip", work / "export.jsonl"
        steps = [
            ("(b) export --format bundle", export_args("bundle", bundle), bundle),
            ("(c) export --format jsonl", export_args("jsonl", jsonl), jsonl),
            ("(d) verify-bundle", verify_args(bundle, keys_file), None),
        ]
        for step, cli, output in steps:
            runs: list[tuple[Run, float]] = []
            for _ in range(args.runs):
                busy0 = machine_busy_seconds()
                run = checked(step, run_cli(cli, env, work, profile=None))
                runs.append((run, (machine_busy_seconds() - busy0) / run.seconds))
                if output is bundle:
                    count = bundle_count(bundle)
                elif output is jsonl:
                    count = line_count(jsonl)
                else:
                    count = verified_count(run)
                if count != n:
                    raise CannotRun(f"{step} wrote or checked {count} entries, not {n}")
                print(
                    f"{step}: {run.seconds:.2f} s ({n / run.seconds:,.0f} entries/s), child CPU"
                    f" {run.cpu_seconds:.2f} s, peak RSS {run.peak_rss_mb:.0f} MB"
                    + (f" ({run.processes} processes)" if run.processes > 1 else "")
                    + f", {runs[-1][1]:.2f} cores busy machine-wide",
                    flush=True,
                )
            best, busy = min(runs, key=lambda r: r[0].seconds)
            rate = n / best.seconds
            rows.append(
                {
                    "step": step,
                    "entries": n,
                    "seconds": best.seconds,
                    "per_s": rate,
                    "ratio": rate / raw_rate,
                    "cpu_seconds": best.cpu_seconds,
                    "machine_cores_busy": busy,
                    "peak_rss_mb": max(r.peak_rss_mb for r, _ in runs),
                    "size_mb": output.stat().st_size / MB if output is not None else None,
                    "all_seconds": [r.seconds for r, _ in runs],
                }
            )
        results["rows"] = rows

        if args.profile:
            for step, cli, _output in steps:
                prof = work / "child.prof"
                run = checked(step, run_cli(cli, env, work, profile=prof))
                print(f"\nprofile of {step} ({run.seconds:.2f} s under cProfile):")
                print(profile_top(prof))

    bundle_row, jsonl_row, verify_row = rows[1], rows[2], rows[3]
    checks: list[tuple[str, bool]] = []
    for row, name in ((bundle_row, "bundle"), (jsonl_row, "jsonl")):
        checks += [
            (f"{name} >= {EXPORT_RATE:,} entries/s", row["per_s"] >= EXPORT_RATE),
            (f"{name} >= {EXPORT_RATIO:.2f} x raw scan", (row["ratio"] or 0) >= EXPORT_RATIO),
            (f"{name} peak RSS < {RSS_LIMIT_MB} MB", (row["peak_rss_mb"] or 0) < RSS_LIMIT_MB),
        ]
    checks += [
        (f"verify-bundle >= {VERIFY_RATE:,} entries/s", verify_row["per_s"] >= VERIFY_RATE),
        (
            f"verify-bundle peak RSS < {RSS_LIMIT_MB} MB",
            (verify_row["peak_rss_mb"] or 0) < RSS_LIMIT_MB,
        ),
    ]
    results["checks"] = checks
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--runs",
        type=int,
        default=2,
        help="runs of each of (a)-(d); the best counts (others share this machine)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then run (b)-(d) again under cProfile and print their top functions",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args(namespace=Args())
    if args.entries < 1 or args.runs < 1:
        parser.error("--entries and --runs must be at least 1")
    try:
        results = bench(args)
    except CannotRun as exc:
        print(f"bench_export: cannot run: {exc}", file=sys.stderr)
        return 2
    except (OSError, psycopg.Error, SQLAlchemyError) as exc:  # no PostgreSQL, no disk
        print(f"bench_export: cannot run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print()
    print(f"export bench: {args.entries:,} entries, profile {PROFILE}")
    print_table(results["rows"])
    print()
    for name, ok in results["checks"]:
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
