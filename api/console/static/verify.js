// Verifying a trail in the browser with WebCrypto, as ops/verify_trail_standalone.py does in
// Python: the same checks, named the same way (checkpoint, leaf_hash, entry_bytes, inclusion,
// order, back_link, payload).
//
// - C2SP signed note (c2sp.org/signed-note) with an Ed25519 signature by the log's verifier key
//   `name+hexid+base64(0x01 || pubkey)`, key id = SHA-256(name || 0x0A || 0x01 || pubkey)[:4];
//   the signed text is a C2SP tlog-checkpoint: origin, size, base64 root.
// - RFC 6962 leaf hash SHA-256(0x00 || entry bytes); RFC 9162 section 2.1.3.2 inclusion proof
//   (node = SHA-256(0x01 || left || right)) to the checkpoint's root.
// - Payload commitment SHA-256(salt || JCS(payload)) (RFC 8785; jcs.js).
// - Back-links: read from the entry bytes, the first entry's conversation_prev is null and each
//   next one names the seq before it.
// - Writer signatures (writer_signature.js) against the writer keys and revocation times the
//   tenant's system log records (writer_keys.js: `writer_key_records`, proven in the system
//   log's checkpoint under YOUR key for that log); the trail's `writer_keys` only restates them
//   for reading and is not read.

import { canonicalBytes } from "./jcs.js";
import { writerSignatureProblem } from "./writer_signature.js";
import { provenWriterKeys } from "./writer_keys.js";

const EM_DASH = "\u2014 ";
const encoder = new TextEncoder();

export class VerifyError extends Error {}

export function b64decode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
    throw new VerifyError("not canonical base64");
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  if (b64encode(out) !== text) throw new VerifyError("not canonical base64");
  return out;
}

export function b64encode(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

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
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function leafHash(entryBytes) {
  return sha256(concat(Uint8Array.of(0), entryBytes));
}

async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

// RFC 9162 section 2.1.3.2: the root an inclusion proof leads to.
export async function rootFromInclusionProof(leaf, index, size, proof) {
  if (!(index >= 0 && index < size)) throw new VerifyError(`leaf ${index} is not in a tree of ${size}`);
  // Sizes stay below 2^53 (the API refuses larger): BigInt keeps the shifts exact above 2^31.
  let fn = BigInt(index);
  let sn = BigInt(size - 1);
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n || p.length !== 32) {
      throw new VerifyError("the proof is too long or holds a hash that is not 32 bytes");
    }
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1n) && fn) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn) throw new VerifyError("the proof is too short");
  return r;
}

// A note verifier key `name+hexid+base64(0x01 || pubkey)`, checked: its id must be the one its
// name and key give. Returns {name, keyId (4 bytes), publicKey (32 bytes), line, fingerprint}.
export async function parseVerifierKey(line) {
  const text = String(line).trim();
  // The base64 key may itself hold "+": split at the first two only (as Python's split("+", 2)).
  const first = text.indexOf("+");
  const second = text.indexOf("+", first + 1);
  if (first < 0 || second < 0) throw new VerifyError("a verifier key is name+hexid+base64key");
  const name = text.slice(0, first);
  const hexid = text.slice(first + 1, second);
  const data = text.slice(second + 1);
  const raw = b64decode(data);
  if (raw.length !== 33 || raw[0] !== 1) throw new VerifyError("not an Ed25519 verifier key");
  const publicKey = raw.slice(1);
  const keyId = (await sha256(concat(encoder.encode(name), Uint8Array.of(0x0a, 0x01), publicKey))).slice(0, 4);
  if (hex(keyId) !== hexid.toLowerCase()) {
    throw new VerifyError(`key id ${hexid} is not the id of this name and key (${hex(keyId)})`);
  }
  // What an auditor compares out of band: SHA-256 of the public key, in groups of four.
  const digest = hex(await sha256(publicKey));
  const fingerprint = digest.slice(0, 32).match(/.{4}/g).join(" ");
  return { name, keyId, publicKey, line: text, fingerprint };
}

// A key as the verifiers print it: `name+hexid+base64(0x01 || pubkey)`.
export function keyText(key) {
  return `${key.name}+${hex(key.keyId)}+${b64encode(concat(Uint8Array.of(1), key.publicKey))}`;
}

export function sameKey(a, b) {
  return a.name === b.name && equal(a.keyId, b.keyId) && equal(a.publicKey, b.publicKey);
}

// Open a C2SP signed note under `keys`, as the standalone verifiers' open_note: {text, signers}
// (the keys of `keys` that signed it); throws if none did, or if a signature by one of them does
// not verify.
export async function noteSigners(note, keys) {
  if (/[\x00-\x09\x0b-\x1f]/.test(note)) throw new VerifyError("the note holds a control character");
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) throw new VerifyError("not a signed note");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2, -1);
  if (block.split("\n").length > 100) throw new VerifyError("not a signed note");
  const signers = [];
  for (const line of block.split("\n")) {
    if (!line.startsWith(EM_DASH)) throw new VerifyError(`malformed signature line ${JSON.stringify(line.slice(0, 40))}`);
    const rest = line.slice(EM_DASH.length);
    const space = rest.indexOf(" ");
    if (space < 0) throw new VerifyError("malformed signature line");
    const signer = rest.slice(0, space);
    const raw = b64decode(rest.slice(space + 1));
    if (raw.length <= 4) throw new VerifyError("malformed signature line");
    for (const key of keys) {
      if (key.name === signer && equal(key.keyId, raw.slice(0, 4))) {
        const ok = await ed25519Verify(key.publicKey, raw.slice(4), encoder.encode(text));
        if (!ok) throw new VerifyError(`signature by ${signer}+${hex(key.keyId)} does not verify`);
        if (!signers.some((k) => sameKey(k, key))) signers.push(key);
      }
    }
  }
  if (!signers.length) throw new VerifyError("the note has no signature by your key(s)");
  return { text, signers };
}

// Open a C2SP signed note under `keys`: its text if a key named `name` signed it (every
// signature by a known key must verify); throws VerifyError naming what is wrong.
export async function openNote(note, keys, name) {
  const { text, signers } = await noteSigners(note, keys).catch((err) => {
    if (err.message === "the note has no signature by your key(s)") return { text: "", signers: [] };
    throw err;
  });
  if (!signers.some((k) => k.name === name)) throw new VerifyError(`the note has no signature by your key for ${name}`);
  return text;
}

// A key rotation statement (handoff-ledger/key-rotation/v1, ledger/core/rotation.py): {old,
// new}. When `old` is one of `trusted`, both keys must have signed it; a statement from a key
// not trusted certifies nothing (and is not an error: it may rotate a key before yours).
export async function openRotation(note, trusted, origin) {
  const lines = (note.slice(0, Math.max(note.lastIndexOf("\n\n"), 0)) + "\n").split("\n");
  const fields = lines.slice(1, 5).map((line) => {
    const space = line.indexOf(" ");
    return space < 0 ? [line, ""] : [line.slice(0, space), line.slice(space + 1)];
  });
  if (lines.length !== 6 || lines[0] !== "handoff-ledger/key-rotation/v1" || fields.map((f) => f[0]).join(" ") !== "origin old new time") {
    throw new VerifyError("not a handoff-ledger/key-rotation/v1 statement");
  }
  const old = await parseVerifierKey(fields[1][1]);
  const next = await parseVerifierKey(fields[2][1]);
  if (!(fields[0][1] === old.name && old.name === next.name && next.name === origin) || sameKey(old, next)) {
    throw new VerifyError("not a rotation between two keys of this log");
  }
  if (trusted.some((k) => sameKey(k, old)) && (await noteSigners(note, [old, next])).signers.length !== 2) {
    throw new VerifyError("not signed by both the old and the new key");
  }
  return { old, new: next, time: fields[3][1] };
}

// The keys `pinned` trusts for `origin` through rotation statements (oldest first): each
// statement signed by a trusted old key and its new key adds the new key. Never a key the
// statements alone name. Returns {keys, certified: [{key, time, index}], problems: [{index,
// message}]}.
export async function certifiedKeys(pinned, statements, origin) {
  const keys = pinned.filter((k) => k.name === origin);
  const certified = [];
  const problems = [];
  for (const [index, note] of statements.entries()) {
    let rotation;
    try {
      rotation = await openRotation(String(note), keys, origin);
    } catch (err) {
      problems.push({ index, message: `not a rotation certifying its key: ${err.message}` });
      continue;
    }
    if (keys.some((k) => sameKey(k, rotation.old)) && !keys.some((k) => sameKey(k, rotation.new))) {
      keys.push(rotation.new);
      certified.push({ key: rotation.new, old: rotation.old, time: rotation.time, index });
    }
  }
  return { keys, certified, problems };
}

// Open a C2SP signed note holding a tlog-checkpoint of `origin` under `keys` (parsed verifier
// keys). Returns {size, root}; throws VerifyError naming what is wrong.
export async function openCheckpoint(note, keys, origin) {
  const text = await openNote(note, keys, origin);
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3 || lines[0] !== origin || !/^(0|[1-9][0-9]*)$/.test(lines[1])) {
    throw new VerifyError("the signed text is not a checkpoint of the trail's origin");
  }
  const root = b64decode(lines[2]);
  if (root.length !== 32) throw new VerifyError("the checkpoint's root is not 32 bytes");
  return { size: Number(lines[1]), root };
}

export async function ed25519Verify(publicKey, signature, message) {
  const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

function strictJson(bytes) {
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  // JSON.parse keeps the last of duplicate keys; canonical bytes have none, so a re-encoding
  // that differs from the bytes (checked by the caller via JCS) exposes them.
  return JSON.parse(text);
}

// What one entry needs hashed, computed for every entry at once (WebCrypto digests run off the
// main thread, so a 200-entry trail's ~4,000 hashes overlap instead of queueing one by one).
async function hashEntry(e, rootKnown) {
  const out = { raw: null, entry: null, leaf: null, error: null, canonical: true, computedRoot: null, proofError: null, commitment: null, payloadError: null };
  try {
    out.raw = b64decode(e.entry_b64);
    out.leaf = await leafHash(out.raw);
    out.entry = strictJson(out.raw);
    out.canonical = equal(canonicalBytes(out.entry), out.raw);
  } catch (err) {
    out.error = err;
    return out;
  }
  const named = out.entry && out.entry.seq;
  const proof = e.inclusion_proof || {};
  if (rootKnown && Number.isInteger(named)) {
    try {
      out.computedRoot = await rootFromInclusionProof(out.leaf, named, proof.tree_size, (proof.hashes || []).map(b64decode));
    } catch (err) {
      out.proofError = err;
    }
  }
  if (e.payload_salt != null) {
    try {
      const salt = b64decode(e.payload_salt);
      const commitment = out.entry.payload || {};
      if (commitment.alg !== "sha256-salted" || salt.length !== 32) {
        throw new VerifyError("not a sha256-salted commitment with a 32-byte salt");
      }
      out.commitment = b64encode(await sha256(concat(salt, canonicalBytes(e.payload))));
    } catch (err) {
      out.payloadError = err;
    }
  }
  return out;
}

// Check a trail (the body of GET /v1/logs/{log}/conversations/{id}/trail) against parsed
// verifier keys: the log's, and its tenant's system log's for the writer keys. Returns
// {status: "verified"|"failed", failures: [{seq, check, message}], warnings, perEntry:
// Map(seq -> {failed, payload}), size, payloads, entries}.
export async function verifyTrail(trail, keys) {
  const failures = [];
  const warnings = [];
  const perEntry = new Map();
  const fail = (seq, check, message) => {
    failures.push({ seq, check, message });
    if (seq !== null && perEntry.has(seq)) perEntry.get(seq).failed.push(check);
  };
  const origin = trail.origin;
  const conversation = trail.conversation;
  let size = -1;
  let root = null;
  for (const e of trail.entries) perEntry.set(e.seq, { failed: [], payload: "none" });
  const [opened, hashed, writerKeys] = await Promise.all([
    openCheckpoint(trail.checkpoint, keys.filter((k) => k.name === origin), origin).catch((err) => err),
    Promise.all(trail.entries.map((e) => hashEntry(e, true))),
    provenWriterKeys(trail.writer_key_records, keys, trail.log, fail),
  ]);
  // The writer's own signature (issue 18; writer_signature.js), from the entry bytes alone.
  const writerProblems = await Promise.all(
    hashed.map((h) => (h.entry && typeof h.entry === "object" && "writer_signature" in h.entry ? writerSignatureProblem(h.entry, writerKeys, "in the trail's writer_key_records") : null)),
  );
  if (opened instanceof Error) {
    fail(null, "checkpoint", `does not open under the pinned key for ${origin}: ${opened.message}`);
  } else {
    size = opened.size;
    root = opened.root;
  }
  if (size >= 0 && size !== trail.tree_size) {
    fail(null, "checkpoint", `tree_size ${trail.tree_size} is not the signed size ${size}`);
  }
  let previous = null;
  let payloads = 0;
  trail.entries.forEach((e, i) => {
    const h = hashed[i];
    let seq = e.seq;
    if (h.error) {
      fail(seq, "entry_bytes", `not an entry: ${h.error.message}`);
      previous = seq;
      return;
    }
    const entry = h.entry;
    if (b64encode(h.leaf) !== e.leaf_hash) {
      fail(seq, "leaf_hash", `SHA-256(0x00 || entry bytes) is ${b64encode(h.leaf)}, not the leaf hash given (${e.leaf_hash})`);
    }
    if (!h.canonical) fail(seq, "entry_bytes", "the entry bytes are not RFC 8785 canonical JSON");
    const named = [entry.seq, entry.origin, entry.event && entry.event.conversation];
    if (named[0] !== seq || named[1] !== origin || named[2] !== conversation) {
      fail(seq, "entry_bytes", `the bytes name seq ${named[0]}, origin ${named[1]}, conversation ${named[2]}`);
    }
    if (Number.isInteger(named[0])) {
      if (named[0] !== seq) perEntry.set(named[0], perEntry.get(seq));
      seq = named[0];
    }
    const proof = e.inclusion_proof || {};
    if (proof.leaf_index !== seq || (size >= 0 && proof.tree_size !== size)) {
      fail(seq, "inclusion", `leaf_index ${proof.leaf_index}, tree_size ${proof.tree_size}: expected ${seq}, ${size}`);
    }
    if (root) {
      if (h.proofError) fail(seq, "inclusion", h.proofError.message);
      else if (!h.computedRoot || !equal(h.computedRoot, root)) fail(seq, "inclusion", "the audit path does not lead to the checkpoint's root");
    }
    if (previous !== null && seq <= previous) fail(seq, "order", `seqs must strictly increase (after ${previous})`);
    const link = "conversation_prev" in entry ? entry.conversation_prev : "absent";
    if (link !== previous) {
      fail(seq, "back_link", `conversation_prev is ${JSON.stringify(link)}, but the previous entry of the trail is ${JSON.stringify(previous)} (an entry is missing, or out of order)`);
    }
    previous = seq;
    if ("writer_signature" in entry && writerProblems[i] !== null) fail(seq, "writer_signature", writerProblems[i]);
    const state = perEntry.get(seq);
    const status = e.payload_status;
    if (e.payload_salt == null) {
      if (e.payload != null || status === "verified") {
        fail(seq, "payload", "a payload is shown without its salt");
      } else if (status === "erased" || status === "missing") {
        state.payload = status;
      } else {
        warnings.push({ seq, check: "payload", message: `the server could not read it (${status})` });
        state.payload = status;
      }
      return;
    }
    if (h.payloadError) {
      fail(seq, "payload", `unreadable: ${h.payloadError.message}`);
      state.payload = "failed";
    } else if (h.commitment === (entry.payload || {}).commitment) {
      state.payload = "verified";
      payloads += 1;
    } else if (status === "mismatch") {
      warnings.push({ seq, check: "payload", message: "the server says it does not match its commitment, and it does not" });
      state.payload = "mismatch";
    } else {
      fail(seq, "payload", "SHA-256(salt || canonical payload) is not the entry's commitment");
      state.payload = "failed";
    }
  });
  return {
    status: failures.length ? "failed" : "verified",
    failures,
    warnings,
    perEntry,
    size,
    payloads,
    entries: trail.entries.length,
  };
}
