// Verifying an evidence bundle (docs/evidence-bundle.md) in the browser, offline: the zip is read
// from disk (no upload), inflated with the browser's own DecompressionStream, and checked with
// WebCrypto against keys the auditor trusts (pinned or pasted, never the bundle's own).
//
// Checks, named as ops/verify_bundle_standalone.py names them (its wording too, where a check is
// new here): zip (names, sizes), manifest (signature, canonical, format), rotation (a later key
// certified by a rotation statement signed by a key you trust: rotations/, erasures/rotations/),
// files (every SHA-256, no file missing or extra), checkpoint (opens under your key; origin,
// size, root as the manifest says), entry (canonical line, seq ascending, leaf hash, seq and
// origin in the bytes, payload commitment, pci-dss-10 withheld), writer_signature (against
// writer-keys.json), range (the leaves fold onto the left subtrees and the consistency proof
// reaches the signed root), tlog-proof (each entry's c2sp.org/tlog-proof to the checkpoint),
// sample (the draw recomputed), chain (each conversation's back-links), time_window (the
// window's neighbours at both ends), count/first/last, consistency (consistency.json), erasure
// (every erased payload covered by a record proven in the system log's checkpoint, which opens
// under YOUR key for that log) and witness (each cosignature of witnesses.json, under the witness
// keys you name when you name any).

import { canonicalBytes } from "./jcs.js";
import { b64decode, b64encode, certifiedKeys, ed25519Verify, hex, keyText, leafHash, openCheckpoint, openNote, rootFromInclusionProof, sha256 } from "./verify.js";
import { writerSignatureProblem } from "./writer_signature.js";
import { applyKeyRecord, KEY_RECORDS, openSystemRecord } from "./writer_keys.js";

// What ops/verify_bundle_standalone.py checks and this page does not: nothing left.
export const NOT_CHECKED = [];
const FORMAT_V1 = "handoff-ledger/evidence-bundle/v1";
const ROTATION = /^rotations\/(0|[1-9][0-9]{0,8})\.note$/;
const E_ROTATION = /^erasures\/rotations\/(0|[1-9][0-9]{0,8})\.note$/;
const E_TLOG = /^erasures\/proofs\/(0|[1-9][0-9]{0,18})\.tlog-proof$/;
const RECORDS = { "ledger.erasure.executed.v1": "by_erasure", "ledger.retention.executed.v1": "by_retention" };
// The time window's rules (docs/evidence-bundle.md, check 6): what it means when one does not
// hold, as the standalone verifier says it.
const FIRST = "the range's first entry, the neighbour before the time window, was received at or after from_time: entries of the window may be missing before it";
const SECOND = "the range's second entry, the window's first, was received before from_time: the range does not start at the window's neighbour";
const LAST = "the range's last entry, the neighbour after the time window, was received before to_time: entries of the window may be missing after it";
const LAST_BUT_ONE = "the range's last entry but one, the window's last, was received at or after to_time: the range does not end at the window's neighbour";
const OUTSIDE = "outside the time window, inside the range: received_at does not grow with seq here (clock skew between server processes?)";
const MAX_MEMBERS = 200_000;
const MAX_TOTAL = 4 * 1024 ** 3;
const MAX_RATIO = 200;
const decoder = new TextDecoder("utf-8", { fatal: true });

class Refused extends Error {}

// --- zip (APPNOTE 4.3: end of central directory, central directory, local headers) ----------

function u16(view, at) {
  return view.getUint16(at, true);
}
function u32(view, at) {
  return view.getUint32(at, true);
}

export async function readZip(buffer) {
  const view = new DataView(buffer);
  let end = -1;
  for (let at = buffer.byteLength - 22; at >= Math.max(0, buffer.byteLength - 22 - 65535); at--) {
    if (u32(view, at) === 0x06054b50) {
      end = at;
      break;
    }
  }
  if (end < 0) throw new Refused("not a zip file (no end of central directory)");
  const count = u16(view, end + 10);
  let at = u32(view, end + 16);
  if (count > MAX_MEMBERS) throw new Refused(`over ${MAX_MEMBERS} members`);
  const members = new Map();
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (u32(view, at) !== 0x02014b50) throw new Refused("a broken central directory");
    const flags = u16(view, at + 8);
    const method = u16(view, at + 10);
    const compressed = u32(view, at + 20);
    const size = u32(view, at + 24);
    const nameLength = u16(view, at + 28);
    const extra = u16(view, at + 30);
    const comment = u16(view, at + 32);
    const local = u32(view, at + 42);
    const name = decoder.decode(new Uint8Array(buffer, at + 46, nameLength));
    at += 46 + nameLength + extra + comment;
    if (unsafe(name)) throw new Refused(`member ${JSON.stringify(name.slice(0, 80))} has an unsafe name`);
    if (members.has(name)) throw new Refused(`member ${name} is in the zip twice`);
    if (flags & 1) throw new Refused(`member ${name} is encrypted`);
    if (size > Math.max(1 << 20, MAX_RATIO * compressed)) throw new Refused(`member ${name} is a zip bomb`);
    total += size;
    if (total > MAX_TOTAL) throw new Refused("over 4 GiB uncompressed: a zip bomb");
    if (method !== 0 && method !== 8) throw new Refused(`member ${name} uses compression method ${method}`);
    const dataAt = local + 30 + u16(view, local + 26) + u16(view, local + 28);
    members.set(name, { name, method, compressed, size, dataAt });
  }
  return {
    names: [...members.keys()],
    async bytes(name) {
      const m = members.get(name);
      if (!m) throw new Refused(`the bundle has no ${name}`);
      const raw = new Uint8Array(buffer, m.dataAt, m.compressed);
      if (m.method === 0) return raw.slice();
      const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
      const out = new Uint8Array(await new Response(stream).arrayBuffer());
      if (out.length !== m.size) throw new Refused(`member ${name} is not the size it declares`);
      return out;
    },
  };
}

function unsafe(name) {
  const parts = name.replace(/\/$/, "").split("/");
  return parts.some((p) => p === "" || p === "." || p === "..") || name.startsWith("/") || /[\\:\x00-\x1f\x7f]/.test(name);
}

// --- Merkle helpers (RFC 9162) ---------------------------------------------------------------

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function node(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

async function fold(frontier, size, leaf) {
  let s = size;
  let l = leaf;
  while (s % 2 === 1) {
    l = await node(frontier.pop(), l);
    s = Math.floor(s / 2);
  }
  frontier.push(l);
}

async function frontierRoot(frontier) {
  let root = frontier[frontier.length - 1];
  for (let i = frontier.length - 2; i >= 0; i--) root = await node(frontier[i], root);
  return root;
}

// RFC 9162 2.1.4.2
export async function consistent(m, n, proof, root1, root2) {
  if (m === n || m === 0) {
    const empty = await sha256(new Uint8Array(0));
    return proof.length === 0 && equal(root1, m ? root2 : empty) && m <= n;
  }
  if (!(m > 0 && m < n) || !proof.length || proof.some((p) => p.length !== 32)) return false;
  const path = (m & (m - 1)) === 0 ? [root1, ...proof] : [...proof];
  let fn = BigInt(m - 1);
  let sn = BigInt(n - 1);
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if (fn & 1n || fn === sn) {
      fr = await node(c, fr);
      sr = await node(c, sr);
      while (!(fn & 1n) && fn) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await node(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equal(fr, root1) && equal(sr, root2);
}

// handoff-ledger/sample/v1 (docs/evidence-bundle.md, "sample")
export async function sampleSeqs(root, seed, start, end, k) {
  const s = await sha256(concat(new TextEncoder().encode("handoff-ledger/sample/v1\n"), root, Uint8Array.of(0x0a), new TextEncoder().encode(seed)));
  const n = BigInt(end - start);
  const two64 = 1n << 64n;
  const limit = two64 - (two64 % n);
  const kept = new Set();
  for (let i = 0n; kept.size < k; i++) {
    const counter = new Uint8Array(8);
    new DataView(counter.buffer).setBigUint64(0, i);
    const digest = await sha256(concat(s, counter));
    const x = new DataView(digest.buffer).getBigUint64(0);
    if (x < limit) kept.add(start + Number(x % n));
  }
  return [...kept].sort((a, b) => a - b);
}

function parseTlogProof(text) {
  const lines = text.split("\n");
  const at = lines.length > 1 && lines[1].startsWith("extra ") ? 2 : 1;
  if (lines[0] !== "c2sp.org/tlog-proof@v1" || lines.length <= at) throw new Error("not a c2sp.org/tlog-proof");
  const index = lines[at].replace(/^index /, "");
  if (!lines[at].startsWith("index ") || !/^(0|[1-9][0-9]{0,19})$/.test(index)) throw new Error("no index line");
  const blank = lines.indexOf("", at + 1);
  if (blank < 0) throw new Error("no blank line before the checkpoint");
  const hashes = lines.slice(at + 1, blank).map(b64decode);
  const checkpoint = lines.slice(blank + 1).join("\n");
  if (hashes.some((h) => h.length !== 32) || !checkpoint) throw new Error("a hash not of 32 bytes, or no checkpoint");
  return { index: Number(index), hashes, checkpoint };
}

// An RFC 3339 time with its offset (received_at, from_time, to_time) as an instant: microseconds
// since 1970 (a BigInt, as exact as the ledger's six digits); null if it is not one.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

export function instant(value) {
  const m = typeof value === "string" ? RFC3339.exec(value) : null;
  if (!m) return null;
  const [, y, mo, d, h, mi, s = "0", frac = "", zulu, sign, oh, om] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const back = new Date(ms);
  if (back.getUTCFullYear() !== Number(y) || back.getUTCMonth() !== Number(mo) - 1 || back.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return null;
  let micros = BigInt(ms) * 1000n + BigInt(frac.padEnd(6, "0"));
  if (!zulu) {
    const offset = (BigInt(Number(oh)) * 60n + BigInt(Number(om))) * 60_000_000n;
    micros += sign === "+" ? -offset : offset;
  }
  return micros;
}

// c2sp.org/tlog-cosignature: the witness key's text if `line` ("— name base64(key ID || u64
// time || signature)") is its cosignature/v1 over the checkpoint `note`; throws otherwise.
export async function cosigned(note, witnessKey, line) {
  const key = String(witnessKey);
  const first = key.indexOf("+");
  const second = key.indexOf("+", first + 1);
  if (first < 0 || second < 0) throw new Error("not an Ed25519 cosignature/v1 witness key");
  const name = key.slice(0, first);
  const raw = b64decode(key.slice(second + 1));
  const keyId = (await sha256(concat(new TextEncoder().encode(name), Uint8Array.of(0x0a, 0x04), raw.slice(1)))).slice(0, 4);
  if (raw.length !== 33 || raw[0] !== 4 || key.slice(first + 1, second) !== hex(keyId)) throw new Error("not an Ed25519 cosignature/v1 witness key");
  const text = String(line);
  const body = text.replace(/\n$/, "").replace(/^\u2014 /, "");
  const space = body.indexOf(" ");
  const signer = space < 0 ? body : body.slice(0, space);
  const sig = b64decode(space < 0 ? "" : body.slice(space + 1));
  if (!text.startsWith("\u2014 ") || signer !== name || !equal(sig.slice(0, 4), keyId) || sig.length !== 76) {
    throw new Error("not a cosignature line of this witness");
  }
  const split = note.lastIndexOf("\n\n");
  const signed = (split < 0 ? "" : note.slice(0, split)) + "\n";
  const time = new DataView(sig.buffer, sig.byteOffset + 4, 8).getBigUint64(0);
  const message = new TextEncoder().encode(`cosignature/v1\ntime ${time}\n${signed}`);
  if (!(await ed25519Verify(raw.slice(1), sig.slice(12), message))) throw new Error("the signature does not verify");
  return key;
}

// --- the checks ----------------------------------------------------------------------------------

// The lines of a file as Python's bytes.splitlines() gives them for "\n" (no empty last line).
function splitLines(body) {
  const lines = [];
  let from = 0;
  for (let i = 0; i < body.length; i++) {
    if (body[i] === 0x0a) {
      lines.push(body.slice(from, i));
      from = i + 1;
    }
  }
  if (from < body.length) lines.push(body.slice(from));
  return lines;
}

class CannotRun extends Error {}

// A check failed: what it was checking has failed, the rest of that is not checked.
class Failed extends Error {
  constructor(check, message, expected = null, found = null) {
    super(message);
    this.check = check;
    this.expected = expected;
    this.found = found;
  }
}

function expect(ok, check, message, expected = null, found = null) {
  if (!ok) throw new Failed(check, message, expected, found);
}

// attempt(), or the check fails with `message` and the reason.
async function must(attempt, check, message) {
  try {
    return await attempt();
  } catch (err) {
    if (err instanceof Failed) throw err;
    throw new Failed(check, `${message}: ${err && err.message ? err.message : err}`);
  }
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function isCanonical(bytes, value) {
  try {
    return equal(canonicalBytes(value), bytes);
  } catch {
    return false; // a lone surrogate, a number JCS cannot write
  }
}

// A value as a failure shows it: short.
function show(value) {
  return value === null || value === undefined || typeof value === "number" || typeof value === "string" ? (value ?? null) : JSON.stringify(value).slice(0, 200);
}

// Verify a bundle (an ArrayBuffer) with `keys` (parsed verifier keys the auditor trusts: the
// log's, and the tenant's system log's when the bundle carries erasure records) and
// `witnessKeys` (witness key texts the auditor trusts; none: each cosignature is checked under
// the key it names). Returns {status: "verified"|"failed"|"error", failures: [{file, seq, check,
// message, expected, found}], warnings, manifest, entries, size, summary}. "error": it could not
// be checked at all (not a bundle, no key).
export async function verifyBundle(buffer, keys, witnessKeys = []) {
  const failures = [];
  const warnings = [];
  const summary = { certified: [], writerSignatures: 0, timeWindow: null, consistencyFrom: null, erasures: null, witnesses: [] };
  const fail = (file, seq, check, message, expected = null, found = null) => failures.push({ file, seq, check, message, expected, found });
  const record = (file, failed, seq = null) => {
    if (!(failed instanceof Failed)) throw failed;
    fail(file, seq, failed.check, failed.message, failed.expected, failed.found);
  };
  const error = (file, check, message, manifest) => ({ status: "error", failures: [{ file, seq: null, check, message, expected: null, found: null }], warnings, manifest, summary });
  let zip;
  try {
    zip = await readZip(buffer);
  } catch (err) {
    return error(null, "zip", err.message);
  }
  const text = async (name) => decoder.decode(await zip.bytes(name));
  const has = (name) => zip.names.includes(name);
  const jsonFile = async (name, check) => {
    const raw = await zip.bytes(name);
    const value = await must(() => JSON.parse(decoder.decode(raw)), check, "the file is not JSON");
    expect(isCanonical(raw, value), check, "the file is not canonical JSON (RFC 8785)");
    return value;
  };
  // Your keys for `origin`, then each key a trusted key certified by a rotation statement
  // (oldest first); never a key the bundle alone names.
  const keysFor = async (origin, pattern, where, what) => {
    const own = keys.filter((k) => k.name === origin);
    if (!own.length) {
      const yours = [...new Set(keys.map((k) => k.name))].sort().join(", ");
      throw new CannotRun(`none of your keys (${yours}) is for ${what} ${JSON.stringify(origin)}: pin or paste its verifier key`);
    }
    const numbered = new Map();
    for (const name of zip.names) {
      const m = pattern.exec(name);
      if (m) numbered.set(Number(m[1]), name);
    }
    const order = [...numbered.keys()].sort((a, b) => a - b);
    if (order.some((n, i) => n !== i)) fail(where, null, "rotation", "not numbered 0, 1, 2, … without a gap");
    const statements = [];
    for (const i of order) statements.push(await text(numbered.get(i)).catch(() => ""));
    const opened = await certifiedKeys(own, statements, origin);
    for (const p of opened.problems) fail(numbered.get(order[p.index]), null, "rotation", p.message);
    summary.certified.push(...opened.certified.map((c) => keyText(c.key)));
    return opened.keys;
  };
  let manifestBytes;
  let manifest;
  try {
    manifestBytes = await zip.bytes("manifest.json");
    manifest = JSON.parse(decoder.decode(manifestBytes));
    if (!isObject(manifest)) throw new Error("not a JSON object");
  } catch (err) {
    return error("manifest.json", "manifest", err.message);
  }
  const origin = manifest.origin;
  let trusted;
  try {
    trusted = await keysFor(origin, ROTATION, "rotations/", "the bundle's log");
  } catch (err) {
    if (!(err instanceof CannotRun)) throw err;
    return error(null, "keys", err.message, manifest);
  }
  // 2. manifest.sig
  try {
    const sig = await text("manifest.sig");
    const opened = await openNote(sig, trusted, origin);
    const expected = `${manifest.format}\n${origin}\n${hex(await sha256(manifestBytes))}\n`;
    if (opened !== expected) fail("manifest.sig", null, "manifest", "the signed text does not name this manifest's format, origin and SHA-256");
  } catch (err) {
    fail("manifest.sig", null, "manifest", err.message);
  }
  if (!equal(canonicalBytes(manifest), manifestBytes)) fail("manifest.json", null, "manifest", "not RFC 8785 canonical JSON");
  if (!/^handoff-ledger\/evidence-bundle\/v[12]$/.test(String(manifest.format))) fail("manifest.json", null, "manifest", `unknown format ${manifest.format}`);
  // 3. files
  const listed = isObject(manifest.files) ? manifest.files : {};
  for (const name of zip.names) {
    if (name === "manifest.json" || name === "manifest.sig") continue;
    if (!(name in listed)) {
      fail(name, null, "files", "a file the manifest does not list");
      continue;
    }
    const digest = hex(await sha256(await zip.bytes(name)));
    if (digest !== listed[name]) fail(name, null, "files", `SHA-256 ${digest}, the manifest says ${listed[name]}`);
  }
  for (const name of Object.keys(listed)) if (!has(name)) fail(name, null, "files", "listed in the manifest but missing");
  // 4. checkpoint
  let size = -1;
  let root = null;
  let checkpointText = "";
  try {
    checkpointText = await text("checkpoint");
    const opened = await openCheckpoint(checkpointText, trusted, origin);
    size = opened.size;
    root = opened.root;
    if (size !== manifest.tree_size || b64encode(root) !== manifest.root) fail("checkpoint", null, "checkpoint", "size or root differ from the manifest's");
  } catch (err) {
    fail("checkpoint", null, "checkpoint", `does not open under your key for ${origin}: ${err.message}`);
  }
  // 5. entries, with the writer signatures: against the keys the system log's records prove
  // (version 2: erasures/writer-keys.jsonl; writer-keys.json only restates them), or against
  // writer-keys.json (version 1).
  const v2 = manifest.format !== FORMAT_V1;
  const systemProofs = new Set(zip.names.filter((n) => E_TLOG.test(n))); // claimed by records
  let section = "unread"; // the manifest's erasures section, once read
  let system = null; // the system log's checkpoint, opened under your key
  let writerKeys = [];
  if (v2) {
    try {
      writerKeys = await checkWriterKeyRecords();
    } catch (err) {
      if (!(err instanceof CannotRun)) throw err;
      return error(null, "keys", err.message, manifest);
    }
  } else if (has("writer-keys.json")) {
    try {
      const value = await jsonFile("writer-keys.json", "writer_signature");
      expect(isObject(value) && Array.isArray(value.keys), "writer_signature", 'not {"keys": [...]}');
      writerKeys = value.keys;
    } catch (err) {
      record("writer-keys.json", err);
    }
  }
  // 6's time window: a range (or a sample's population) exported for [from_time, to_time).
  const treeSize = size >= 0 ? size : manifest.tree_size;
  const range = isObject(manifest.range) && Object.keys(manifest.range).length === 2 ? manifest.range : {};
  const population = manifest.selection !== "entries" && Number.isInteger(range.start) && Number.isInteger(range.end) && range.start >= 0 && range.start < range.end && range.end <= treeSize ? [range.start, range.end] : null;
  let window = null;
  if (population && isObject(manifest.query)) {
    const texts = {};
    for (const key of ["from_time", "to_time"]) if (manifest.query[key] != null) texts[key] = manifest.query[key];
    const bad = Object.keys(texts).find((key) => instant(texts[key]) === null);
    if (bad) {
      fail("manifest.json", null, "time_window", `query.${bad} is not an RFC 3339 time with its offset`, null, show(texts[bad]));
    } else if (Object.keys(texts).length) {
      window = { low: texts.from_time == null ? null : instant(texts.from_time), high: texts.to_time == null ? null : instant(texts.to_time) };
      summary.timeWindow = { from_time: null, to_time: null, ...texts };
    }
  }
  const checkTimeWindow = (seq, received) => {
    const [start, end] = population;
    const given = summary.timeWindow;
    const at = instant(received);
    if (at === null) {
      fail("entries.jsonl", seq, "time_window", "the entry bytes' received_at is not an RFC 3339 time", null, show(received));
      return;
    }
    const before = window.low !== null && at < window.low;
    const after = window.high !== null && at >= window.high;
    const fromSide = window.low !== null && start > 0;
    const toSide = window.high !== null && end < treeSize;
    const rules = [
      [fromSide && seq === start, before, `< ${given.from_time}`, FIRST],
      [fromSide && seq === start + 1, !before, `>= ${given.from_time}`, SECOND],
      [toSide && seq === end - 1, after, `>= ${given.to_time}`, LAST],
      [toSide && seq === end - 2, !after, `< ${given.to_time}`, LAST_BUT_ONE],
    ];
    const broken = rules.filter(([applies, holds]) => applies && !holds);
    for (const [, , want, what] of broken) fail("entries.jsonl", seq, "time_window", what, want, received);
    const neighbour = (seq === start && before) || (seq === end - 1 && after);
    if ((before || after) && !(broken.length || neighbour)) {
      warnings.push({ file: "entries.jsonl", seq, check: "time_window", message: `received at ${received}, ${OUTSIDE}` });
    }
  };
  const erased = []; // [seq, conversation] of each erased payload: check 8 finds its record
  const lines = (await text("entries.jsonl")).split("\n").filter((l) => l.length);
  const entries = [];
  let previous = -1;
  for (const line of lines) {
    let item;
    try {
      item = JSON.parse(line);
    } catch (err) {
      fail("entries.jsonl", null, "entry", `a line is not JSON: ${err.message}`);
      continue;
    }
    const seq = item.seq;
    if (!equal(canonicalBytes(item), new TextEncoder().encode(line))) fail("entries.jsonl", seq, "entry", "the line is not canonical JSON");
    if (!(Number.isInteger(seq) && seq > previous)) fail("entries.jsonl", seq, "entry", `seq ${seq} does not ascend`);
    previous = seq;
    let raw;
    let entry;
    try {
      raw = b64decode(item.entry_b64);
      entry = JSON.parse(decoder.decode(raw));
      if (!isObject(entry)) throw new Error("the entry bytes are not a JSON object");
    } catch (err) {
      fail("entries.jsonl", seq, "entry", `unreadable entry bytes: ${err.message}`);
      continue;
    }
    const leaf = await leafHash(raw);
    if (b64encode(leaf) !== item.leaf_hash) fail("entries.jsonl", seq, "leaf_hash", "SHA-256(0x00 || entry bytes) is not the leaf hash given");
    if (entry.seq !== seq || entry.origin !== origin) fail("entries.jsonl", seq, "entry", `the bytes name seq ${entry.seq}, origin ${entry.origin}`);
    if (manifest.profile === "pci-dss-10" && (item.payload_status !== "withheld" || item.payload_b64 !== null || item.payload_salt !== null)) {
      fail("entries.jsonl", seq, "payload", "a pci-dss-10 bundle carries no payload");
    }
    if (item.payload_b64 != null) {
      try {
        const digest = await sha256(concat(b64decode(item.payload_salt), b64decode(item.payload_b64)));
        if (b64encode(digest) !== (entry.payload || {}).commitment) fail("entries.jsonl", seq, "payload", "SHA-256(salt || payload) is not the entry's commitment");
      } catch (err) {
        fail("entries.jsonl", seq, "payload", err.message);
      }
    } else if (item.payload_salt == null && item.payload_status === "erased") {
      erased.push([seq, isObject(entry.event) ? entry.event.conversation : null]);
    }
    if ("writer_signature" in entry) {
      // From the entry bytes alone: an erased payload changes nothing.
      const problem = await writerSignatureProblem(entry, writerKeys, v2 ? "(version 2: proven in erasures/writer-keys.jsonl)" : "in writer-keys.json");
      if (problem === null) summary.writerSignatures += 1;
      else fail("entries.jsonl", seq, "writer_signature", `writer signature: ${problem}`);
    }
    if (window && Number.isInteger(seq)) checkTimeWindow(seq, entry.received_at);
    entries.push({ seq, leaf, entry });
  }
  // 6. the selection
  if (manifest.count !== entries.length) fail("manifest.json", null, "count", `count ${manifest.count}, entries.jsonl has ${entries.length}`);
  const same = (e, stated) => (e ? !!stated && stated.seq === e.seq && stated.leaf_hash === b64encode(e.leaf) : stated === null);
  if (!same(entries[0], manifest.first) || !same(entries[entries.length - 1], manifest.last)) {
    fail("manifest.json", null, "first_last", "first or last differ from entries.jsonl");
  }
  if (root && manifest.selection === "range") {
    try {
      const proof = JSON.parse(await text("proofs/range.json"));
      const { start, end } = manifest.range;
      if (proof.start !== start || proof.end !== end || proof.tree_size !== size) throw new Error("start, end or tree_size differ from the manifest's");
      const seqs = entries.map((e) => e.seq);
      if (seqs.length !== end - start || seqs.some((s, i) => s !== start + i)) throw new Error("entries.jsonl is not exactly the range");
      const frontier = proof.left.map(b64decode);
      let at = start;
      for (const e of entries) {
        await fold(frontier, at, e.leaf);
        at += 1;
      }
      const rangeRoot = await frontierRoot(frontier);
      if (!(await consistent(end, size, proof.consistency.map(b64decode), rangeRoot, root))) {
        throw new Error("the range's leaves and the consistency proof do not lead to the signed root");
      }
    } catch (err) {
      fail("proofs/range.json", null, "range", err.message);
    }
  }
  if (root && (manifest.selection === "entries" || manifest.selection === "sample")) {
    for (const e of entries) {
      const name = `proofs/${e.seq}.tlog-proof`;
      try {
        const proof = parseTlogProof(await text(name));
        if (proof.index !== e.seq) throw new Error(`index ${proof.index}`);
        if (proof.checkpoint !== checkpointText) throw new Error("its checkpoint is not the bundle's");
        const computed = await rootFromInclusionProof(e.leaf, e.seq, size, proof.hashes);
        if (!equal(computed, root)) throw new Error("the audit path does not lead to the checkpoint's root");
      } catch (err) {
        fail(name, e.seq, "tlog-proof", err.message);
      }
    }
  }
  if (root && manifest.selection === "sample") {
    const { start, end } = manifest.range;
    const drawn = await sampleSeqs(root, String(manifest.sample.seed || ""), start, end, manifest.sample.size);
    const expected = [...new Set([start, end - 1, ...drawn])].sort((a, b) => a - b);
    const found = entries.map((e) => e.seq);
    if (JSON.stringify(expected) !== JSON.stringify(found)) fail("entries.jsonl", null, "sample", `the draw gives seqs ${expected.slice(0, 8).join(", ")}…, the bundle holds ${found.slice(0, 8).join(", ")}…`);
  }
  if (manifest.selection === "entries") {
    for (const conversation of manifest.conversations || []) {
      let prev = null;
      for (const e of entries.filter((x) => (x.entry.event || {}).conversation === conversation)) {
        if (e.entry.conversation_prev !== prev) fail("entries.jsonl", e.seq, "chain", `conversation_prev ${JSON.stringify(e.entry.conversation_prev)}, expected ${JSON.stringify(prev)}`);
        prev = e.seq;
      }
    }
  }
  // 7. consistency.json: the earlier checkpoint (under a key you trust) is a prefix of this one
  // (of the manifest's size and root when the checkpoint did not open: that failed already).
  const toRoot = root || (() => {
    try {
      return b64decode(manifest.root);
    } catch {
      return null;
    }
  })();
  if (has("consistency.json")) {
    try {
      const c = await jsonFile("consistency.json", "consistency");
      let what = "not {from, from_size, to_size, hashes} of their types";
      expect(isObject(c) && typeof c.from === "string" && Number.isInteger(c.from_size) && Number.isInteger(c.to_size), "consistency", what);
      const hashes = await must(() => c.hashes.map(b64decode), "consistency", what);
      expect(c.to_size === treeSize, "consistency", "to_size is not the checkpoint's size", treeSize, c.to_size);
      what = "the earlier checkpoint does not open under your key(s)";
      const earlier = await must(() => openCheckpoint(c.from, trusted, origin), "consistency", what);
      expect(earlier.size === c.from_size, "consistency", "from_size is not the earlier checkpoint's size", earlier.size, c.from_size);
      what = "the earlier checkpoint is not a prefix of this one (RFC 9162)";
      expect(toRoot && (await consistent(earlier.size, treeSize, hashes, earlier.root, toRoot)), "consistency", what);
      summary.consistencyFrom = earlier.size;
    } catch (err) {
      record("consistency.json", err);
    }
  }
  // 8. (version 2) erasure records, witness cosignatures
  if (v2) {
    try {
      await checkErasures();
    } catch (err) {
      if (!(err instanceof CannotRun)) throw err;
      return error(null, "keys", err.message, manifest);
    }
    for (const name of [...systemProofs].sort()) fail(name, null, "erasure", "a tlog-proof for no record of erasures/");
    await checkWitnesses();
  }

  // The manifest's erasures section (null if null or malformed), and erasures/checkpoint opened
  // under YOUR key for the system log (`system`), once for both kinds of record. CannotRun
  // without your key for that log.
  async function openSystem() {
    if (section !== "unread") return section;
    section = "erasures" in manifest ? manifest.erasures : undefined;
    try {
      expect(section !== undefined, "manifest", "erasures: missing (version 2)");
      if (section !== null) {
        const ok = isObject(section) && typeof section.origin === "string" && Number.isInteger(section.tree_size);
        expect(ok, "manifest", "erasures: not {origin, tree_size, records}");
      }
    } catch (err) {
      record("manifest.json", err);
      section = null;
    }
    if (section !== null) {
      const systemKeys = await keysFor(section.origin, E_ROTATION, "erasures/rotations/", "the system log of the records");
      try {
        const note = await must(() => text("erasures/checkpoint"), "erasure", "no erasures/checkpoint");
        const what = `does not open under your key(s) for ${JSON.stringify(section.origin)}`;
        const cp = await must(() => openCheckpoint(note, systemKeys, section.origin), "erasure", what);
        expect(cp.size === section.tree_size, "erasure", "not the size the manifest names", section.tree_size, cp.size);
        system = { origin: section.origin, size: cp.size, root: cp.root, note };
      } catch (err) {
        record("erasures/checkpoint", err);
      }
    }
    return section;
  }

  // The writer keys (kid, credential, public_key, revoked_at) as erasures/writer-keys.jsonl
  // proves them: each line a ledger.writer_key.added.v1 / revoked.v1 record of the system log's
  // "keys" stream, of this log, checked as an erasure record is. A line that fails is a
  // writer_key failure naming its system-log seq, and its key is left out (the entries it signed
  // then fail, each at its seq).
  async function checkWriterKeyRecords() {
    const file = "erasures/writer-keys.jsonl";
    if (!has(file)) return [];
    await openSystem();
    if (section === null || system === null) {
      fail(file, null, "writer_key", "the system log's checkpoint is not proven");
      return [];
    }
    const found = new Map();
    const recordLines = splitLines(await zip.bytes(file));
    if (recordLines.length !== section.writer_key_records) {
      fail("manifest.json", null, "writer_key", `writer_key_records: not the lines of ${file}`, recordLines.length, show(section.writer_key_records));
    }
    for (const [i, line] of recordLines.entries()) {
      let seq = null;
      try {
        const checked = await checkRecord(i + 1, line, KEY_RECORDS, "keys", "writer_key");
        seq = checked.seq;
        await applyKeyRecord(found, checked).catch((err) => {
          throw new Failed("writer_key", err.message);
        });
      } catch (err) {
        if (err instanceof Failed) record(file, err, seq);
        else fail(file, seq, "writer_key", `line ${i + 1}: malformed: ${err && err.message ? err.message : err}`);
      }
    }
    return [...found.values()];
  }

  // Every erased payload is covered by a record of the tenant's system log: a record
  // (erasures/records.jsonl) of this log naming the entry's conversation, made at a log size
  // above its seq, proven (erasures/proofs/<seq>.tlog-proof) in the system log's checkpoint
  // (erasures/checkpoint), which opens under YOUR key for that log.
  async function checkErasures() {
    await openSystem();
    const covers = new Map();
    if (section !== null && system !== null) {
      const recordLines = has("erasures/records.jsonl") ? splitLines(await zip.bytes("erasures/records.jsonl")) : [];
      for (const [i, line] of recordLines.entries()) {
        try {
          const { type, record: rec } = await checkRecord(i + 1, line, Object.keys(RECORDS), "erasure", "erasure");
          const what = `line ${i + 1}: not a record naming conversations and a size`;
          expect(Array.isArray(rec.conversations) && Number.isInteger(rec.tree_size), "erasure", what);
          for (const conversation of rec.conversations) {
            if (!covers.has(conversation)) covers.set(conversation, []);
            covers.get(conversation).push([rec.tree_size, RECORDS[type]]);
          }
        } catch (err) {
          record("erasures/records.jsonl", err);
        }
      }
      if (recordLines.length !== section.records) {
        fail("manifest.json", null, "erasure", "records: not the lines of erasures/records.jsonl", recordLines.length, show(section.records));
      }
    }
    const by = { by_erasure: 0, by_retention: 0 };
    for (const [seq, conversation] of erased) {
      const kinds = (covers.get(conversation) || []).filter(([limit]) => seq < limit).map(([, kind]) => kind);
      if (kinds.length) by[kinds[kinds.length - 1]] += 1;
      else fail("entries.jsonl", seq, "erasure", "erased payload without a valid erasure record", `a record of ${JSON.stringify(conversation)}`, null);
    }
    if (section !== null && system !== null) summary.erasures = { ...by, records: section.records };
  }

  // Line n of a records file, checked as an entry of the system log is: canonical JSON of five
  // fields, its leaf hash, a record of `types` in `stream` of this log, its payload against its
  // commitment, its tlog-proof. Returns {seq, type, record}.
  async function checkRecord(n, line, types, stream, check) {
    const obj = await must(() => JSON.parse(decoder.decode(line)), check, `line ${n}: not JSON`);
    const fields = ["entry_b64", "leaf_hash", "payload_b64", "payload_salt", "seq"];
    const shaped = isObject(obj) && Object.keys(obj).sort().join(",") === fields.join(",") && isCanonical(line, obj);
    expect(shaped && Number.isInteger(obj.seq), check, `line ${n}: not a record line`);
    const seq = obj.seq;
    const name = `erasures/proofs/${seq}.tlog-proof`;
    systemProofs.delete(name); // claimed, even if the record fails below
    const at = `line ${n} (system log seq ${seq})`;
    const opened = await openSystemRecord(obj, { origin: system.origin, log: manifest.log, types, stream, at }).catch((err) => {
      throw new Failed(check, err.message);
    });
    expect(has(name), check, `${at}: the record has no tlog-proof`);
    const what = `${name}: not a proof of this record in erasures/checkpoint`;
    const proof = await must(async () => parseTlogProof(await text(name)), check, what);
    expect(proof.index === seq && proof.checkpoint === system.note, check, what);
    const found = await must(() => rootFromInclusionProof(opened.leaf, seq, system.size, proof.hashes), check, what);
    expect(equal(found, system.root), check, what);
    return opened;
  }

  // witnesses.json: each cosignature verifies over the checkpoint it names, under the witness
  // key it names (the bundle's statement), which must be one you trust when you name any.
  async function checkWitnesses() {
    if (!has("witnesses.json")) return;
    let w;
    try {
      w = await jsonFile("witnesses.json", "witness");
      expect(isObject(w) && Array.isArray(w.cosignatures), "witness", "not {cosignatures: [...]}");
    } catch (err) {
      record("witnesses.json", err);
      return;
    }
    const notes = { checkpoint: checkpointText, "erasures/checkpoint": system && system.note };
    for (const [i, c] of w.cosignatures.entries()) {
      try {
        const note = isObject(c) && Object.hasOwn(notes, String(c.checkpoint)) ? notes[String(c.checkpoint)] : null;
        const shaped = isObject(c) && Object.keys(c).sort().join(",") === "checkpoint,cosignature,witness_key";
        expect(note && shaped, "witness", `cosignature ${i}: not {checkpoint, witness_key, cosignature} of a checkpoint here`);
        const witness = await must(() => cosigned(String(note), c.witness_key, c.cosignature), "witness", `cosignature ${i} does not verify`);
        expect(!witnessKeys.length || witnessKeys.includes(witness), "witness", `cosignature ${i}: by a witness key you did not name (--witness-key)`, null, witness);
        summary.witnesses.push({ checkpoint: c.checkpoint, witness, trusted: witnessKeys.length > 0 });
      } catch (err) {
        record("witnesses.json", err);
      }
    }
  }

  return {
    status: failures.length ? "failed" : "verified",
    failures,
    warnings,
    manifest,
    entries: entries.length,
    size,
    summary,
  };
}
