// Writer keys as the tenant's system log proves them (issue 18), for both the trail view
// (the trail's `writer_key_records`) and the bundle verifier (erasures/writer-keys.jsonl): each
// record is a ledger.writer_key.added.v1 / revoked.v1 entry of the system log's "keys" stream,
// with its payload and salt, checked the way ops/verify_trail_standalone.py and
// ops/verify_bundle_standalone.py check it. Where the inclusion proof comes from differs (inline
// hashes in a trail, a tlog-proof file in a bundle), so the caller proves the leaf.

import { b64decode, b64encode, leafHash, openCheckpoint, rootFromInclusionProof, sha256 } from "./verify.js";
import { b64urlDecode, b64urlEncode } from "./writer_signature.js";

export const KEY_RECORDS = ["ledger.writer_key.added.v1", "ledger.writer_key.revoked.v1"];
const decoder = new TextDecoder("utf-8", { fatal: true });

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function attempt(what, fn) {
  try {
    return fn();
  } catch (err) {
    throw new Error(`${what}: ${err && err.message ? err.message : err}`);
  }
}

// One record of the system log `origin` ({seq, entry_b64, leaf_hash, payload_b64, payload_salt}):
// its leaf hash, an entry of `types` in `stream` at that seq, its payload against the entry's
// commitment, a record of `log`. `at` prefixes every message. Returns {seq, type, record, leaf};
// throws Error naming what does not hold (the caller names the check).
export async function openSystemRecord(obj, { origin, log, types, stream, at }) {
  const seq = obj.seq;
  const [raw, data, salt] = attempt(`${at}: not base64`, () => [b64decode(obj.entry_b64), b64decode(obj.payload_b64), b64decode(obj.payload_salt)]);
  const leaf = await leafHash(raw);
  if (b64encode(leaf) !== obj.leaf_hash) throw new Error(`${at}: SHA-256(0x00 || entry bytes) is not the leaf hash given`);
  const entry = attempt(`${at}: entry bytes not JSON`, () => JSON.parse(decoder.decode(raw)));
  const event = isObject(entry) && isObject(entry.event) ? entry.event : {};
  if (!(isObject(entry) && entry.seq === seq && entry.origin === origin && types.includes(event.type) && event.conversation === stream)) {
    throw new Error(`${at}: not a record of the system log's ${stream} stream at seq ${seq}`);
  }
  const what = `${at}: SHA-256(salt || payload bytes) is not the entry's commitment`;
  const committed = attempt(what, () => b64decode(entry.payload.commitment));
  if (!equal(await sha256(concat(salt, data)), committed)) throw new Error(what);
  const record = attempt(`${at}: payload not JSON`, () => JSON.parse(decoder.decode(data)));
  if (!(isObject(record) && record.log === log)) throw new Error(`${at}: not a record of this log`);
  return { seq, type: event.type, record, leaf };
}

// Apply one checked key record to `found` (kid -> {kid, credential, public_key, revoked_at}):
// an added key must be the key its kid names (RFC 7638) and new; a revocation must revoke a key
// added before, of the same credential, not yet revoked. Throws Error naming the system seq.
export async function applyKeyRecord(found, { seq, type, record }) {
  const kid = record.kid;
  const known = found.get(kid);
  if (type === KEY_RECORDS[0]) {
    const what = `system log seq ${seq}: adds key ${JSON.stringify(kid)} twice, or a key it does not name`;
    const publicKey = attempt(what, () => b64urlDecode(record.public_key));
    const jwk = `{"crv":"Ed25519","kty":"OKP","x":"${record.public_key}"}`;
    const thumb = b64urlEncode(await sha256(new TextEncoder().encode(jwk)));
    if (!(known === undefined && publicKey.length === 32 && thumb === kid)) throw new Error(what);
    found.set(kid, { kid, credential: record.credential, revoked_at: null, public_key: record.public_key });
  } else {
    const ok = known !== undefined && known.credential === record.credential && known.revoked_at === null && typeof record.revoked_at === "string";
    if (!ok) throw new Error(`system log seq ${seq}: revokes key ${JSON.stringify(kid)}, which no record adds`);
    known.revoked_at = record.revoked_at;
  }
}

// The writer keys a trail's `writer_key_records` prove ({origin, tree_size, checkpoint,
// records}): the checkpoint must open under `systemKeys` (the auditor's keys for that system
// log), each record is checked and proven by its inline audit path. `fail(seq, check, message)`
// gets a writer_key failure (seq null; the message names the system-log seq) for a record that
// does not check out, and its key is left out, so every entry it signed fails at its own seq.
export async function provenWriterKeys(carried, systemKeys, log, fail) {
  if (carried === null || carried === undefined) return [];
  if (!isObject(carried) || !Array.isArray(carried.records) || typeof carried.origin !== "string") {
    fail(null, "writer_key", "writer_key_records is not {origin, checkpoint, records}");
    return [];
  }
  const origin = carried.origin;
  const mine = systemKeys.filter((k) => k.name === origin);
  if (!mine.length) {
    fail(null, "writer_key", `the writer keys are proven in the system log ${origin}: none of your keys is for it (pin or paste its verifier key)`);
    return [];
  }
  let size;
  let root;
  try {
    ({ size, root } = await openCheckpoint(String(carried.checkpoint), mine, origin));
  } catch (err) {
    fail(null, "writer_key", `the system log's checkpoint does not open under your key for ${origin}: ${err.message}`);
    return [];
  }
  const found = new Map();
  let previous = -1;
  for (const r of carried.records) {
    const where = isObject(r) ? r.seq : null;
    try {
      if (!isObject(r) || !Number.isInteger(r.seq) || r.seq <= previous) {
        throw new Error(`system log seq ${where}: seq is not an integer above the previous record's`);
      }
      const at = `system log seq ${r.seq}`;
      const checked = await openSystemRecord(r, { origin, log, types: KEY_RECORDS, stream: "keys", at });
      const hashes = attempt(`${at}: not proven in the system log's checkpoint`, () => r.hashes.map(b64decode));
      const computed = await rootFromInclusionProof(checked.leaf, r.seq, size, hashes).catch(() => null);
      if (!computed || !equal(computed, root)) throw new Error(`${at}: not proven in the system log's checkpoint`);
      await applyKeyRecord(found, checked);
      previous = r.seq;
    } catch (err) {
      fail(null, "writer_key", err.message);
    }
  }
  return [...found.values()];
}
