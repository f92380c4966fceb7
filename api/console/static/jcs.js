// RFC 8785 JSON Canonicalization Scheme (JCS) for values parsed by JSON.parse.
//
// The ledger's payload commitment is SHA-256(salt || JCS(data)); the console recomputes it
// from the payload it shows, so what the auditor reads is what was committed. JCS is exactly
// ECMAScript's own serialization for numbers and strings (RFC 8785 section 3.2.2), with object
// members sorted by the UTF-16 code units of their names (section 3.2.3): JavaScript's default
// string order. Tested against the Python `rfc8785` package on the same values
// (tests/console/test_console_browser.py).

export class CanonicalizationError extends Error {}

export function canonicalize(value) {
  const parts = [];
  write(value, parts);
  return parts.join("");
}

function write(value, parts) {
  if (value === null) {
    parts.push("null");
  } else if (typeof value === "boolean") {
    parts.push(value ? "true" : "false");
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new CanonicalizationError("JCS has no NaN or Infinity");
    }
    // ES6 Number serialization; JSON.stringify writes -0 as "0", as JCS requires.
    parts.push(JSON.stringify(value));
  } else if (typeof value === "string") {
    parts.push(string(value));
  } else if (Array.isArray(value)) {
    parts.push("[");
    value.forEach((item, i) => {
      if (i) parts.push(",");
      write(item, parts);
    });
    parts.push("]");
  } else if (typeof value === "object") {
    const keys = Object.keys(value).sort();
    parts.push("{");
    keys.forEach((key, i) => {
      if (i) parts.push(",");
      parts.push(string(key), ":");
      write(value[key], parts);
    });
    parts.push("}");
  } else {
    throw new CanonicalizationError(`JCS cannot encode a ${typeof value}`);
  }
}

function string(text) {
  // A lone surrogate cannot be encoded as UTF-8: not I-JSON (RFC 7493), refused by JCS.
  if (!text.isWellFormed()) {
    throw new CanonicalizationError("a string holds a lone surrogate");
  }
  // JSON.stringify escapes exactly what JCS escapes: ", \, and the C0 controls (as \b \t \n
  // \f \r or \u00xx, lower-case hex); everything else is written as itself.
  return JSON.stringify(text);
}

export function canonicalBytes(value) {
  return new TextEncoder().encode(canonicalize(value));
}
