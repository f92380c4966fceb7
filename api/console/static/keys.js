// The verifier keys this browser trusts, per log origin: pinned on first use (from the server's
// public GET /v1/logs/{log}/verifier-key) or pasted by the auditor (from an anchor, a witness,
// their records). A pin is never replaced silently: when the server lists other keys than the
// pinned ones, the page shows a loud warning and keeps verifying with the pinned keys; only the
// auditor pasting a key changes a pin.

import { get, segment } from "./api.js";
import { parseVerifierKey } from "./verify.js";

const STORE = "handoff-ledger.pinned-keys";

function load() {
  try {
    const value = JSON.parse(localStorage.getItem(STORE) || "{}");
    return value && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
}

function save(all) {
  localStorage.setItem(STORE, JSON.stringify(all));
}

function serverLines(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}

// {keys: parsed pinned keys, pin: {lines, source, pinned_at}, change: null | {server, added,
// removed}} for `origin`; pins the server's keys if this browser has none for it yet.
export async function trustedKeys(log, origin, serverText = null) {
  const text = serverText ?? (await get(`/v1/logs/${segment(log)}/verifier-key`, { text: true, auth: false }));
  const server = serverLines(text);
  const all = load();
  let pin = all[origin];
  let firstUse = false;
  if (!pin || !Array.isArray(pin.lines) || !pin.lines.length) {
    const own = server.filter((l) => l.startsWith(origin + "+"));
    pin = {
      lines: own,
      source: `first use: fetched from ${location.host} (GET /v1/logs/${log}/verifier-key)`,
      pinned_at: new Date().toISOString(),
    };
    all[origin] = pin;
    save(all);
    firstUse = true;
  }
  const keys = [];
  for (const line of pin.lines) keys.push(await parseVerifierKey(line));
  const added = server.filter((l) => !pin.lines.includes(l));
  const removed = pin.lines.filter((l) => !server.includes(l));
  const change = added.length || removed.length ? { server, added, removed } : null;
  return { keys, pin, change, firstUse };
}

// Pin `line` for `origin` at the auditor's request (replacing the pin); throws if the line is
// not a valid Ed25519 note verifier key named after the origin.
export async function pinPasted(origin, line) {
  const key = await parseVerifierKey(line);
  if (key.name !== origin) {
    throw new Error(`that key is named ${key.name}, not this log's origin ${origin}`);
  }
  const all = load();
  all[origin] = {
    lines: [key.line],
    source: "pasted by the auditor",
    pinned_at: new Date().toISOString(),
  };
  save(all);
  return key;
}

// Every pinned key line, for forms that take keys (the bundle verifier).
export function pinnedKeyLines() {
  return Object.values(load()).flatMap((pin) => (pin && Array.isArray(pin.lines) ? pin.lines : []));
}
