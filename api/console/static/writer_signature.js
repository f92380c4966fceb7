// Writer signatures in the browser (issue 18), as ops/verify_trail_standalone.py checks them:
// an entry's `writer_signature` is a detached compact JWS (RFC 7515) with an unencoded payload
// (RFC 7797: "b64": false, crit ["b64"]), alg EdDSA (RFC 8037, Ed25519 via WebCrypto), whose
// kid is the RFC 7638 thumbprint of a writer key the caller proved (writer_keys.js: the system
// log's records). The signed statement is RFC 8785 (jcs.js) of the entry's actor, event,
// origin, outcome and payload plus "format": "handoff-ledger/statement/v1", so it is rebuilt
// from the entry alone (erasure changes nothing). The key must belong to the entry's writer credential and not have been
// revoked at or before the entry's received_at.

import { canonicalBytes } from "./jcs.js";

const encoder = new TextEncoder();
export const STATEMENT_FORMAT = "handoff-ledger/statement/v1";
const HEADER_PARAMETERS = new Set(["alg", "b64", "crit", "kid"]);

export function b64urlDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new Error("not base64url without padding");
  }
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  if (b64urlEncode(out) !== text) throw new Error("not canonical base64url");
  return out;
}

export function b64urlEncode(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function thumbprint(publicKeyText) {
  const jwk = `{"crv":"Ed25519","kty":"OKP","x":"${publicKeyText}"}`;
  return b64urlEncode(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(jwk))));
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// Why the entry's writer signature does not check out, or null (a good signature). `where`
// says where the writer keys came from, for the message (a trail, or a bundle's records).
export async function writerSignatureProblem(entry, writerKeys, where = "in the trail") {
  try {
    const parts = String(entry.writer_signature).split(".");
    if (parts.length !== 3) return "not a compact JWS";
    const [head, detached, sig] = parts;
    const header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b64urlDecode(head)));
    if (header === null || typeof header !== "object" || header.alg !== "EdDSA") {
      return "the JWS header does not name alg EdDSA";
    }
    const crit = header.crit;
    if (detached || header.b64 !== false || !Array.isArray(crit) || crit.length !== 1 || crit[0] !== "b64") {
      return "not a detached JWS with an unencoded payload (b64 false, crit [b64])";
    }
    if (Object.keys(header).some((k) => !HEADER_PARAMETERS.has(k))) return "unknown JWS header parameters";
    const kid = header.kid;
    const key = (writerKeys || []).find((k) => k && k.kid === kid);
    if (!key) return `no writer key ${JSON.stringify(kid)} ${where}`;
    const publicKey = b64urlDecode(key.public_key);
    if (publicKey.length !== 32 || (await thumbprint(key.public_key)) !== kid) {
      return `writer key ${kid} is not the key it names (RFC 7638 thumbprint)`;
    }
    if (key.credential !== entry.writer.credential) {
      return `key ${kid} belongs to credential ${key.credential}, not the entry's writer`;
    }
    if (key.revoked_at != null && !(entry.received_at < key.revoked_at)) {
      return `key ${kid} was revoked at ${key.revoked_at}, before the entry was received`;
    }
    const statement = { format: STATEMENT_FORMAT };
    for (const name of ["actor", "event", "origin", "outcome", "payload"]) statement[name] = entry[name];
    const message = concat(encoder.encode(`${head}.`), canonicalBytes(statement));
    const cryptoKey = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, cryptoKey, b64urlDecode(sig), message);
    return ok ? null : `the signature by key ${kid} does not verify over the statement`;
  } catch (exc) {
    return `unreadable: ${exc && exc.message ? exc.message : exc}`;
  }
}
