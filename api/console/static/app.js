// The auditor console: sign in with a token, find a conversation, read its handoff as a timeline
// and see it verified in this browser. Routes (client-side, so a trail's address can be pasted
// into a ticket):
//
//   /console/                                   the logs this token reads
//   /console/logs/{log}                         search, random handoff, overview charts, export
//   /console/logs/{log}/conversations/{id}      the trail, verified here
//
// Every value that came from an event is put on the page as text (dom.js), never as markup.

import { ApiError, get, postForBlob, segment, setToken, signOut, token } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { append, clear, consolePath, h } from "./dom.js";
import { NOT_CHECKED, verifyBundle } from "./bundle.js";
import { pinnedKeyLines, pinPasted, trustedKeys } from "./keys.js";
import { b64decode, b64encode, certifiedKeys, hex, parseVerifierKey, sameKey, verifyTrail } from "./verify.js";

const main = () => document.getElementById("main");
const TRIGGERS = [
  "uncertainty_threshold",
  "sentiment_shift",
  "explicit_request",
  "repeated_failure",
  "policy_trigger",
  "guardrail",
  "tool_failure",
];
const EVENT_TYPES = [
  "conversation.started",
  "message.created",
  "agent.reply",
  "reasoning.step",
  "tool.call",
  "data.access",
  "redaction.applied",
  "sentiment.scored",
  "identity.verified",
  "escalation.triggered",
  "handoff.requested",
  "handoff.accepted",
  "takeover.productive",
  "suggested_action.proposed",
  "suggested_action.resolved",
  "handoff.released",
  "conversation.ended",
];
let signInMessage = null;

// --- routing -------------------------------------------------------------------------------

function parseRoute(pathname) {
  const parts = pathname.replace(/^\/console\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { view: "home" };
  if (parts.length === 1 && parts[0] === "bundle") return { view: "bundle" };
  if (parts[0] === "logs" && parts.length === 2) return { view: "log", log: parts[1] };
  if (parts[0] === "logs" && parts.length === 4 && parts[2] === "conversations") {
    return { view: "trail", log: parts[1], conversation: parts[3] };
  }
  return { view: "not-found" };
}

export function navigate(path) {
  history.pushState(null, "", path);
  render();
}

function link(path, ...children) {
  return h(
    "a",
    {
      href: path,
      onclick: (event) => {
        if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
        event.preventDefault();
        navigate(path);
      },
    },
    ...children,
  );
}

async function render() {
  const route = parseRoute(location.pathname);
  renderNav();
  const root = clear(main());
  if (route.view === "bundle") {
    bundleView(root); // offline: no token, no server
    return;
  }
  if (!token()) {
    signInView(root);
    return;
  }
  try {
    if (route.view === "home") await homeView(root);
    else if (route.view === "log") await logView(root, route.log);
    else if (route.view === "trail") await trailView(root, route.log, route.conversation);
    else notFoundView(root, "There is no such page in the console.");
  } catch (err) {
    handleError(root, err);
  }
}

function handleError(root, err) {
  if (!(err instanceof ApiError)) {
    clear(root);
    root.append(problemBox("Something went wrong in the page", String(err && err.message), true));
    return;
  }
  if (err.kind === "unauthenticated") {
    signOut();
    signInMessage = "The ledger did not accept your token (wrong, revoked or expired). Sign in again.";
    render();
    return;
  }
  clear(root);
  if (err.kind === "not-found" || err.kind === "forbidden") {
    notFoundView(root, err.kind === "forbidden"
      ? "Your token cannot read that log (it belongs to another log, or its role cannot read trails)."
      : err.detail);
  } else if (err.kind === "network") {
    root.append(problemBox("The ledger server cannot be reached", "Check your connection or ask the operator, then retry.", true));
  } else if (err.kind === "unavailable") {
    root.append(problemBox("The ledger is unavailable right now", `${err.detail} (HTTP ${err.status}). Its database may be down.`, true));
  } else {
    root.append(problemBox(`The ledger refused the request (HTTP ${err.status})`, err.detail, true));
  }
}

function problemBox(title, detail, retry) {
  return h(
    "section",
    { class: "problem", role: "alert" },
    h("h1", {}, title),
    h("p", {}, detail || ""),
    retry ? h("button", { type: "button", class: "primary", onclick: () => render() }, "Retry") : null,
  );
}

function notFoundView(root, detail) {
  document.title = "Not found · Handoff Ledger";
  root.append(
    h(
      "section",
      { class: "problem", "data-page": "not-found" },
      h("h1", {}, "Not found"),
      h("p", {}, detail || "Nothing here."),
      h("p", {}, link("/console/", "Back to your logs")),
    ),
  );
  focusHeading(root);
}

function focusHeading(root) {
  const heading = root.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

function renderNav() {
  const nav = clear(document.getElementById("nav"));
  if (!token()) return;
  nav.append(
    h(
      "button",
      {
        type: "button",
        class: "link",
        onclick: () => {
          signOut();
          signInMessage = "You are signed out. The token was removed from this tab.";
          navigate("/console/");
        },
      },
      "Sign out",
    ),
  );
}

// --- sign in ---------------------------------------------------------------------------------

function signInView(root) {
  document.title = "Sign in · Handoff Ledger";
  const message = signInMessage;
  signInMessage = null;
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const status = h("p", { class: "message", role: "alert", id: "signin-message" }, message || "");
  const form = h(
    "form",
    {
      class: "card signin",
      onsubmit: async (event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        setToken(value);
        try {
          await get("/v1/logs");
        } catch (err) {
          if (err instanceof ApiError && (err.kind === "unauthenticated" || err.kind === "forbidden")) {
            signOut();
            signInMessage = err.kind === "forbidden"
              ? "This token cannot read trails: the console needs an auditor or admin token."
              : "The ledger did not accept this token (wrong, revoked or expired).";
            render();
            return;
          }
          signOut();
          clear(status);
          status.append(
            err instanceof ApiError && err.kind === "network"
              ? "The ledger server cannot be reached. Try again."
              : `The ledger could not check the token: ${err.message}`,
          );
          return;
        }
        render();
      },
    },
    h("h1", {}, "Sign in"),
    h(
      "p",
      { id: "token-help" },
      "Paste an auditor or admin token (from ",
      h("code", {}, "ledger credentials create"),
      "). It stays in this tab only and is sent only as an Authorization header.",
    ),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    status,
  );
  root.append(form);
  if (message) status.classList.add("error");
  input.focus();
}

// --- the logs ------------------------------------------------------------------------------

async function homeView(root) {
  document.title = "Logs · Handoff Ledger";
  root.append(h("h1", {}, "Your logs"), h("p", { class: "muted", "aria-live": "polite" }, "Loading…"));
  const { logs } = await get("/v1/logs");
  clear(root);
  root.append(h("h1", {}, "Your logs"), h("p", {}, link("/console/bundle", "Verify an evidence bundle file"), " (in this browser, offline)."));
  const rows = logs.map((log) =>
    h(
      "tr",
      {},
      h("td", {}, link(consolePath("logs", log.log), log.log)),
      h("td", {}, h("code", {}, log.origin)),
      h("td", { class: "num" }, log.size.toLocaleString("en")),
      h("td", {}, `size ${log.checkpoint.size.toLocaleString("en")}, signed ${when(log.checkpoint.signed_at)}`),
      h("td", {}, verificationBadge(log.last_verification)),
    ),
  );
  root.append(
    scrolling(
      "Logs",
      h(
      "table",
      { class: "table" },
      h("caption", {}, "Logs this token can read"),
      h(
        "thead",
        {},
        h("tr", {}, ...["Log", "Origin", "Entries", "Latest checkpoint", "Last verification run"].map((t) => h("th", { scope: "col" }, t))),
      ),
      h("tbody", {}, rows),
      ),
    ),
  );
  focusHeading(root);
}

// A wide table scrolls on its own (reflow at 200% zoom); the region is focusable so that the
// keyboard can scroll it too.
function scrolling(label, table) {
  return h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": label }, table);
}

function verificationBadge(run) {
  if (!run) return h("span", { class: "badge neutral" }, "none recorded");
  const ok = run.status === "intact";
  return h(
    "span",
    {},
    h("span", { class: `badge ${ok ? "ok" : "bad"}` }, String(run.status || run.run_status)),
    ` ${run.mode || ""} run, ${when(run.finished_at)} (system log seq ${run.seq})`,
  );
}

// --- one log: search, random handoff, overview, export ----------------------------------------

async function logView(root, log) {
  document.title = `${log} · Handoff Ledger`;
  const results = h("section", { "aria-labelledby": "results-h", class: "results" });
  const overview = h("section", { "aria-labelledby": "overview-h", class: "overview" });
  const params = new URLSearchParams(location.search);
  const field = (name, label, attrs = {}) =>
    h("div", { class: "field" }, h("label", { for: `f-${name}` }, label), h("input", { id: `f-${name}`, name, value: params.get(name) || "", ...attrs }));
  const select = (name, label, options) =>
    h(
      "div",
      { class: "field" },
      h("label", { for: `f-${name}` }, label),
      h(
        "select",
        { id: `f-${name}`, name },
        options.map(([value, text]) => h("option", { value, selected: (params.get(name) || "") === value }, text)),
      ),
    );
  const form = h(
    "form",
    {
      class: "card search",
      role: "search",
      onsubmit: (event) => {
        event.preventDefault();
        const query = new URLSearchParams();
        for (const [k, v] of new FormData(form)) if (String(v).trim()) query.set(k, String(v).trim());
        history.replaceState(null, "", `${consolePath("logs", log)}${query.size ? "?" + query : ""}`);
        search(results, log, query, null);
      },
    },
    h("h2", {}, "Find a conversation"),
    h(
      "div",
      { class: "fields" },
      field("from", "From (UTC)", { type: "datetime-local" }),
      field("to", "To (UTC)", { type: "datetime-local" }),
      field("subject", "Data subject (customer id)", { autocomplete: "off" }),
      select("event_type", "Event type", [["", "any"], ...EVENT_TYPES.map((t) => [`handoff.${t}.v1`, t])]),
      select("trigger", "Escalation trigger", [["", "any"], ...TRIGGERS.map((t) => [t, t])]),
      select("handed_off", "Handoff", [["", "any"], ["true", "handed off"], ["false", "not handed off"]]),
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Search"),
      h(
        "button",
        {
          type: "button",
          id: "random-handoff",
          onclick: async () => {
            try {
              const pick = await get(`/v1/logs/${segment(log)}/random-handoff`);
              navigate(consolePath("logs", log, "conversations", pick.conversation.conversation));
            } catch (err) {
              handleError(main(), err);
            }
          },
        },
        "Open a random handoff",
      ),
    ),
  );
  root.append(
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, link("/console/", "Logs"), " › ", log),
    h("h1", {}, `Log ${log}`),
    form,
    results,
    overview,
    exportForm(log),
    h("p", {}, link("/console/bundle", "Verify an evidence bundle file"), " (in this browser, offline)."),
  );
  focusHeading(root);
  await Promise.all([search(results, log, params, null), renderOverview(overview, log)]);
}

function searchQuery(params, below) {
  const query = new URLSearchParams();
  for (const name of ["subject", "event_type", "trigger", "handed_off"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  for (const name of ["from", "to"]) {
    if (params.get(name)) query.set(name, `${params.get(name)}Z`.replace(/Z+$/, "Z"));
  }
  query.set("limit", "25");
  if (below !== null) query.set("below_seq", String(below));
  return query;
}

async function search(results, log, params, below) {
  if (below === null) {
    clear(results);
    results.append(h("h2", { id: "results-h" }, "Conversations"), h("p", { class: "muted", "aria-live": "polite" }, "Searching…"));
  }
  let page;
  try {
    page = await get(`/v1/logs/${segment(log)}/conversations?${searchQuery(params, below)}`);
  } catch (err) {
    if (err instanceof ApiError && err.kind === "invalid") {
      clear(results);
      results.append(h("h2", { id: "results-h" }, "Conversations"), h("p", { class: "message error", role: "alert" }, `The search was refused: ${err.detail}`));
      return;
    }
    throw err;
  }
  let body = results.querySelector("tbody");
  if (below === null) {
    clear(results);
    results.append(h("h2", { id: "results-h" }, "Conversations"));
    if (page.index.behind > 0) {
      results.append(h("p", { class: "message" }, `The search index is ${page.index.behind.toLocaleString("en")} entries behind the latest checkpoint; they become searchable as it catches up.`));
    }
    if (!page.conversations.length) {
      results.append(h("p", { class: "empty" }, "No conversation matches."));
      return;
    }
    body = h("tbody", {});
    results.append(
      scrolling(
        "Conversations found",
        h(
        "table",
        { class: "table" },
        h("caption", {}, "Newest first"),
        h(
          "thead",
          {},
          h("tr", {}, ...["Conversation", "Last activity", "Entries", "Data subjects", "Triggers", "Handoff", "Time to productive takeover"].map((t) => h("th", { scope: "col" }, t))),
        ),
        body,
        ),
      ),
    );
  }
  for (const c of page.conversations) {
    body.append(
      h(
        "tr",
        {},
        h("td", {}, link(consolePath("logs", log, "conversations", c.conversation), c.conversation)),
        h("td", {}, when(c.last_at)),
        h("td", { class: "num" }, c.events),
        h("td", {}, c.subjects.join(", ")),
        h("td", {}, c.triggers.join(", ")),
        h("td", {}, c.handed_off ? "yes" : "no"),
        h("td", { class: "num" }, seconds(c.time_to_productive_seconds)),
      ),
    );
  }
  const more = results.querySelector("button.more");
  if (more) more.remove();
  if (page.next_below_seq !== null) {
    results.append(h("button", { type: "button", class: "more", onclick: () => search(results, log, params, page.next_below_seq) }, "Older conversations"));
  }
}

async function renderOverview(section, log) {
  const data = await get(`/v1/logs/${segment(log)}/overview`);
  clear(section);
  const rate = data.handoff_rate === null ? "—" : `${(data.handoff_rate * 100).toFixed(1)}%`;
  section.append(
    h("h2", { id: "overview-h" }, "Overview"),
    h(
      "dl",
      { class: "stats" },
      stat("Conversations", data.conversations.toLocaleString("en")),
      stat("Handed off", `${data.handed_off.toLocaleString("en")} (${rate})`),
      stat("Escalated", data.escalated.toLocaleString("en")),
      stat("Time to accept, median / p90", `${seconds(data.time_to_accept.median_seconds)} / ${seconds(data.time_to_accept.p90_seconds)}`),
      stat("Time to productive takeover, median / p90", `${seconds(data.time_to_productive.median_seconds)} / ${seconds(data.time_to_productive.p90_seconds)}`),
    ),
    h(
      "div",
      { class: "charts" },
      barChart({ title: "Events per day (received, UTC)", bars: data.events_per_day.map((d) => ({ label: d.day.slice(5), value: d.events })), empty: "No events yet." }),
      barChart({ title: "Escalation trigger mix (conversations)", bars: data.trigger_mix.map((t) => ({ label: t.trigger.replace(/_/g, " "), value: t.conversations })), empty: "No escalation yet." }),
      barChart({
        title: "Takeover times, seconds",
        bars: [
          { label: "accept p50", value: data.time_to_accept.median_seconds || 0 },
          { label: "accept p90", value: data.time_to_accept.p90_seconds || 0 },
          { label: "takeover p50", value: data.time_to_productive.median_seconds || 0 },
          { label: "takeover p90", value: data.time_to_productive.p90_seconds || 0 },
        ],
        format: (v) => v.toFixed(0),
      }),
    ),
  );
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("dt", {}, label), h("dd", {}, value));
}

function exportForm(log) {
  const status = h("p", { class: "message", "aria-live": "polite" });
  const form = h(
    "form",
    {
      class: "card export",
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(form);
        const body = { profile: data.get("profile"), format: data.get("format") };
        const conversations = String(data.get("conversations") || "").split(/[\s,]+/).filter(Boolean);
        if (conversations.length) body.conversations = conversations;
        if (data.get("data_subject")) body.data_subject = String(data.get("data_subject"));
        clear(status);
        status.append("Building the export…");
        try {
          const { blob, headers } = await postForBlob(`/v1/logs/${segment(log)}/exports`, body);
          const extension = { bundle: "zip", jsonl: "jsonl", csv: "csv", ocsf: "jsonl", html: "html" }[body.format] || "bin";
          const a = h("a", { href: URL.createObjectURL(blob), download: `${log}-${body.profile}.${extension}` });
          document.body.append(a);
          a.click();
          a.remove();
          clear(status);
          status.append(`Downloaded (${blob.size.toLocaleString("en")} bytes; SHA-256 ${headers.get("X-Ledger-Export-SHA256") || "?"}). The export is recorded in the system log.`);
        } catch (err) {
          clear(status);
          status.append(`The export was refused: ${err.message}`);
        }
      },
    },
    h("h2", {}, "Export evidence"),
    h(
      "div",
      { class: "fields" },
      h("div", { class: "field" }, h("label", { for: "x-profile" }, "Profile"), h("select", { id: "x-profile", name: "profile" }, ["soc2-population", "pci-dss-10", "hipaa-disclosures"].map((p) => h("option", { value: p }, p)))),
      h("div", { class: "field" }, h("label", { for: "x-format" }, "Format"), h("select", { id: "x-format", name: "format" }, ["bundle", "jsonl", "csv", "ocsf", "html"].map((p) => h("option", { value: p }, p)))),
      h("div", { class: "field" }, h("label", { for: "x-conversations" }, "Conversations (optional)"), h("input", { id: "x-conversations", name: "conversations", autocomplete: "off" })),
      h("div", { class: "field" }, h("label", { for: "x-subject" }, "Data subject (hipaa-disclosures)"), h("input", { id: "x-subject", name: "data_subject", autocomplete: "off" })),
    ),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Build and download")),
    status,
  );
  return form;
}

// --- an evidence bundle, verified offline ---------------------------------------------------------

function bundleView(root) {
  document.title = "Verify a bundle · Handoff Ledger";
  const file = h("input", { id: "bundle-file", name: "bundle", type: "file", accept: ".zip,application/zip", required: true });
  const keys = h("textarea", { id: "bundle-keys", name: "keys", rows: 3, spellcheck: "false" }, pinnedKeyLines().join("\n"));
  const witnesses = h("textarea", { id: "bundle-witness-keys", name: "witness_keys", rows: 2, spellcheck: "false", "aria-describedby": "bundle-witness-help" });
  const result = h("section", { id: "bundle", "data-verification": "pending", "aria-live": "polite" });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        clear(result);
        result.dataset.verification = "pending";
        result.append(h("p", {}, "Verifying…"));
        const parsed = [];
        try {
          for (const line of keys.value.split("\n").map((l) => l.trim()).filter(Boolean)) parsed.push(await parseVerifierKey(line));
        } catch (err) {
          clear(result);
          result.dataset.verification = "error";
          result.append(h("p", { class: "message error", role: "alert" }, `A key is not a verifier key: ${err.message}`));
          return;
        }
        const buffer = await file.files[0].arrayBuffer();
        const witnessKeys = witnesses.value.split("\n").map((l) => l.trim()).filter(Boolean);
        const report = await verifyBundle(buffer, parsed, witnessKeys);
        renderBundleReport(result, report);
      },
    },
    h("h2", {}, "The bundle and the keys you trust"),
    h("p", {}, "The file is read in this browser and never uploaded. The keys come from you (pinned in this browser, or pasted: from an anchor, a witness, your records), never from the bundle."),
    h("label", { for: "bundle-file" }, "Evidence bundle (.zip)"),
    file,
    h("label", { for: "bundle-keys" }, "Verifier keys (name+hexid+base64, one a line): the log's, and its tenant's system log's for a bundle with erased payloads"),
    keys,
    h("label", { for: "bundle-witness-keys" }, "Witness keys you trust (optional, one a line)"),
    h("p", { id: "bundle-witness-help", class: "muted hint" }, "With none, each cosignature is checked under the witness key the bundle names: compare those with the keys the witnesses publish."),
    witnesses,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Verify")),
  );
  root.append(h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, link("/console/", "Logs"), " › bundle"), h("h1", {}, "Verify an evidence bundle"), form, result);
  focusHeading(root);
}

// A finding as the standalone verifier prints it: file, seq, check, message (expected, found).
function findingText(f) {
  let line = [f.file, f.seq === null || f.seq === undefined ? null : `seq ${f.seq}`, f.check].filter(Boolean).join(": ") + `: ${f.message}`;
  if ((f.expected ?? null) !== null || (f.found ?? null) !== null) line += ` (expected ${JSON.stringify(f.expected ?? null)}, found ${JSON.stringify(f.found ?? null)})`;
  return line;
}

function renderBundleReport(section, report) {
  clear(section);
  const m = report.manifest || {};
  const s = report.summary || {};
  const banner = h("div", { class: `banner ${report.status === "verified" ? "ok" : "bad"}`, role: "status" });
  if (report.status === "verified") {
    banner.append(
      h("strong", {}, "Verified in this browser. "),
      `${report.entries} entries of ${String(m.origin)} (${String(m.profile)}, ${String(m.selection)}) are in the log signed at size ${report.size}; every file matches the signed manifest.`,
    );
  } else {
    banner.append(
      h("strong", {}, report.status === "error" ? "The bundle could not be checked. " : `Verification failed: ${report.failures.length} check${report.failures.length === 1 ? "" : "s"} did not pass.`),
      h("ul", { class: "failures" }, report.failures.map((f) => h("li", {}, findingText(f)))),
    );
  }
  section.append(banner);
  if (report.warnings && report.warnings.length) {
    section.append(h("ul", { class: "warnings" }, report.warnings.map((w) => h("li", {}, `warning: ${findingText(w)}`))));
  }
  // What else was proven: each line only when the bundle has it, the keys as code.
  const facts = [];
  for (const key of s.certified || []) facts.push(["Key certified by a rotation statement signed by a key you trust", h("code", {}, key)]);
  if (s.writerSignatures) facts.push(["Writer signatures", `${s.writerSignatures} verified, each under the writer key the system log's records prove`]);
  if (s.timeWindow) facts.push(["Time window", `[${s.timeWindow.from_time ?? "the log's start"}, ${s.timeWindow.to_time ?? "the checkpoint"}): complete at both ends`]);
  if (s.consistencyFrom !== null && s.consistencyFrom !== undefined) facts.push(["Consistency", `the checkpoint of size ${s.consistencyFrom} (under your key) is a prefix of this one`]);
  if (s.erasures) facts.push(["Erased payloads", `${s.erasures.by_erasure} by erasure, ${s.erasures.by_retention} by retention, each covered by one of ${s.erasures.records} signed system-log records`]);
  for (const w of s.witnesses || []) {
    facts.push([`Cosigned (${w.checkpoint})`, h("span", {}, h("code", {}, w.witness), w.trusted ? ", a witness key you named" : ": the key the bundle names; compare it with the one the witness publishes")]);
  }
  if (report.status === "verified" && facts.length) {
    section.append(h("div", { class: "card" }, h("h2", {}, "Also proven"), h("dl", { class: "proven" }, facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]))));
  }
  if (NOT_CHECKED.length) {
    section.append(h("p", { class: "muted" }, `Not checked in the browser: ${NOT_CHECKED.join(", ")}. For those, run ledger verify-bundle or ops/verify_bundle_standalone.py on the same file.`));
  }
  section.dataset.verification = report.status;
}

// --- the trail ---------------------------------------------------------------------------------

async function trailView(root, log, conversation) {
  document.title = `${conversation} · Handoff Ledger`;
  const section = h("section", { id: "trail", class: "trail", "data-verification": "pending", "aria-busy": "true" });
  const banner = h("div", { class: "banner pending", role: "status", "aria-live": "polite" }, "Loading the trail…");
  root.append(
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, link("/console/", "Logs"), " › ", link(consolePath("logs", log), log), " › ", conversation),
    section,
  );
  section.append(h("h1", {}, `Conversation ${conversation}`), banner);
  focusHeading(root);
  const started = performance.now();
  // The trail and the server's (public) keys in parallel; the keys are only compared with the pin.
  const serverKeys = get(`/v1/logs/${segment(log)}/verifier-key`, { text: true, auth: false });
  serverKeys.catch(() => {}); // awaited below; a failure surfaces there
  const trail = await get(`/v1/logs/${segment(log)}/conversations/${segment(conversation)}/trail`);
  const keysPanel = h("section", { class: "card keys", "aria-labelledby": "keys-h" });
  const trust = await followRotations(await trustedKeys(log, trail.origin, await serverKeys), trail);
  trust.system = await systemLogTrust(trail);
  renderKeys(keysPanel, trail, trust, () => render());
  clear(banner);
  banner.append("Verifying in this browser…");
  const result = await verifyTrail(trail, [...trust.keys, ...(trust.system ? trust.system.keys : [])]);
  const model = timelineModel(trail, result);
  section.append(keysPanel, factsView(model), sentimentView(model), timelineView(trail, model, result));
  setVerdict(section, banner, trail, result, trust);
  section.dataset.elapsedMs = String(Math.round(performance.now() - started));
}

function setVerdict(section, banner, trail, result, trust) {
  clear(banner);
  banner.classList.remove("pending");
  banner.classList.add(result.status === "verified" ? "ok" : "bad");
  if (result.status === "verified") {
    // After a rotation the checkpoint is signed by the newest certified key.
    const rotated = trust.certified && trust.certified.length ? trust.certified[trust.certified.length - 1].key : null;
    const key = rotated || trust.keys[0];
    const how = rotated ? " (certified by a rotation statement from the pinned key)" : "";
    banner.append(
      h("strong", {}, "Verified in this browser. "),
      `${result.entries} entries are in the log signed at size ${result.size.toLocaleString("en")} by ${key ? `${key.name}+${hex(key.keyId)}` : "the pinned key"}${how}, `,
      `each leaf hash and inclusion proof checks, the back-links run unbroken from the first entry to the last, and ${result.payloads} payloads match their commitments.`,
      h("span", { class: "muted" }, " Not proven: that no later entry of this conversation exists."),
    );
  } else {
    banner.append(h("strong", {}, `Verification failed: ${result.failures.length} check${result.failures.length === 1 ? "" : "s"} did not pass.`));
    banner.append(
      h(
        "ul",
        { class: "failures" },
        result.failures.map((f) => h("li", {}, f.seq === null ? `${f.check}: ${f.message}` : `seq ${f.seq}: ${f.check}: ${f.message}`)),
      ),
    );
  }
  if (result.warnings.length) {
    banner.append(h("ul", { class: "warnings" }, result.warnings.map((w) => h("li", {}, `warning: seq ${w.seq}: ${w.check}: ${w.message}`))));
  }
  section.setAttribute("aria-busy", "false");
  section.dataset.verification = result.status;
  if (result.failures.length) section.dataset.failedSeqs = [...new Set(result.failures.map((f) => f.seq).filter((s) => s !== null))].join(",");
}

// The writer keys of a signed trail are proven in its tenant's system log: its checkpoint must
// open under this browser's pin for that log (pinned on first use like the log's own key, never
// taken from the trail). Its log id is its origin after the origin prefix the trail's log shares.
async function systemLogTrust(trail) {
  const carried = trail.writer_key_records;
  const prefix = String(trail.origin).slice(0, -String(trail.log).length);
  if (!carried || typeof carried.origin !== "string" || !carried.origin.startsWith(prefix)) return null;
  return trustedKeys(carried.origin.slice(prefix.length), carried.origin).catch(() => null);
}

// A legitimate signing-key rotation: the trail carries the log's rotation statements (oldest
// first); each one signed by a key this browser trusts and by its new key certifies the new key
// (verify.js, certifiedKeys). The pin itself is not changed: the chain is followed from it on
// every load. A key the server lists that no statement from the pin certifies stays a loud
// warning, as before.
async function followRotations(trust, trail) {
  const rotation = await certifiedKeys(trust.keys, Array.isArray(trail.rotations) ? trail.rotations : [], trail.origin);
  let change = trust.change;
  if (change) {
    const unexplained = [];
    for (const line of change.added) {
      const key = await parseVerifierKey(line).catch(() => null);
      if (!key || !rotation.keys.some((k) => sameKey(k, key))) unexplained.push(line);
    }
    change = unexplained.length || change.removed.length ? { ...change, added: unexplained } : null;
  }
  return { ...trust, pinned: trust.keys, keys: rotation.keys, certified: rotation.certified, rotationProblems: rotation.problems, change };
}

function renderKeys(panel, trail, trust, reverify) {
  clear(panel);
  panel.append(h("h2", { id: "keys-h" }, "Verifier key"));
  if (trust.change) {
    panel.append(
      h(
        "div",
        { class: "banner bad", role: "alert", id: "key-changed" },
        h("strong", {}, "Warning: the server's verifier key for this log differs from the one pinned in this browser. "),
        "The trail is checked against the pinned key only; nothing was re-pinned. A legitimate key rotation is announced in the log (ledger.key.rotated.v1); check it out of band before pasting the new key below.",
        h("ul", {}, trust.change.added.map((l) => h("li", {}, "server now lists: ", h("code", {}, l))), trust.change.removed.map((l) => h("li", {}, "no longer listed: ", h("code", {}, l)))),
      ),
    );
  }
  const list = h("ul", { class: "keylist" });
  for (const key of trust.pinned || trust.keys) {
    list.append(
      h(
        "li",
        {},
        h("code", {}, `${key.name}+${hex(key.keyId)}`),
        h("br"),
        "fingerprint (SHA-256 of the public key): ",
        h("code", { class: "fingerprint" }, key.fingerprint),
      ),
    );
  }
  panel.append(
    list,
    h("p", { class: "muted" }, `Pinned ${trust.firstUse ? "just now, " : ""}${trust.pin.source}, at ${when(trust.pin.pinned_at)}. Compare the fingerprint with one you got elsewhere (an anchor, a witness, your records).`),
  );
  if (trust.certified && trust.certified.length) {
    panel.append(
      h("h3", {}, "Rotated"),
      h(
        "ul",
        { class: "keylist", id: "keys-rotated" },
        trust.certified.map((c) =>
          h(
            "li",
            {},
            h("code", {}, `${c.key.name}+${hex(c.key.keyId)}`),
            h("br"),
            "fingerprint: ",
            h("code", { class: "fingerprint" }, c.key.fingerprint),
            h("br"),
            `certified by the log's rotation statement of ${c.time}, signed by ${c.old.name}+${hex(c.old.keyId)} (trusted here) and by the new key`,
          ),
        ),
      ),
    );
  }
  for (const p of trust.rotationProblems || []) {
    panel.append(h("p", { class: "message error", role: "alert" }, `Rotation statement ${p.index}: ${p.message}; the key it names is not trusted.`));
  }
  if (trust.system) {
    // The writer keys' system log: its pin, shown so it can be compared out of band too.
    panel.append(
      h("h3", {}, "Writer keys proven in the system log"),
      h(
        "ul",
        { class: "keylist", id: "keys-system" },
        trust.system.keys.map((key) => h("li", {}, h("code", {}, `${key.name}+${hex(key.keyId)}`), h("br"), "fingerprint: ", h("code", { class: "fingerprint" }, key.fingerprint))),
      ),
      h("p", { class: "muted" }, `Pinned ${trust.system.pin.source}, at ${when(trust.system.pin.pinned_at)}.${trust.system.change ? " The server now lists other keys for it: only the pinned ones are used." : ""}`),
    );
  }
  const input = h("textarea", { id: "paste-key", name: "verifier_key", rows: 2, spellcheck: "false" });
  const message = h("p", { class: "message", role: "alert" });
  panel.append(
    h(
      "details",
      {},
      h("summary", {}, "Pin a key you got elsewhere"),
      h(
        "form",
        {
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              await pinPasted(trail.origin, input.value);
              reverify();
            } catch (err) {
              clear(message);
              message.append(`Not pinned: ${err.message}`);
            }
          },
        },
        h("label", { for: "paste-key" }, `Verifier key for ${trail.origin} (name+hexid+base64)`),
        input,
        h("button", { type: "submit" }, "Pin this key and verify again"),
        message,
      ),
    ),
  );
}

// What the page shows of each entry, read from the verified entry bytes and payloads (not from
// the server's summary): the timeline, handoff timings, sentiment and redactions in place.
function timelineModel(trail, result) {
  const items = trail.entries.map((e) => {
    let entry = null;
    try {
      entry = JSON.parse(new TextDecoder().decode(b64decode(e.entry_b64)));
    } catch {
      entry = e.entry || {};
    }
    const event = (entry && entry.event) || {};
    const type = String(event.type || "");
    const name = type.replace(/^handoff\./, "").replace(/\.v\d+$/, "");
    const check = result.perEntry.get(e.seq) || { failed: [], payload: "none" };
    return { e, entry, event, type, name, data: e.payload || {}, check };
  });
  const redactions = new Map();
  const addRedaction = (eventId, record, by) => {
    if (!redactions.has(eventId)) redactions.set(eventId, []);
    redactions.get(eventId).push({ ...record, by });
  };
  for (const item of items) {
    if (item.name === "redaction.applied") {
      const target = (item.data.target || {}).event_id;
      for (const r of item.data.redactions || []) addRedaction(String(target), r, `writer (seq ${item.e.seq})`);
    }
    for (const r of item.data.ledger_redactions || []) addRedaction(String(item.event.id), r, "the ledger's card guard");
  }
  const firstTime = (n) => {
    const found = items.find((i) => i.name === n);
    return found ? Date.parse(found.event.time) : null;
  };
  const requested = firstTime("handoff.requested");
  const accepted = firstTime("handoff.accepted");
  const productive = firstTime("takeover.productive");
  return {
    items,
    redactions,
    timeToAccept: requested !== null && accepted !== null ? (accepted - requested) / 1000 : null,
    timeToProductive: requested !== null && productive !== null ? (productive - requested) / 1000 : null,
  };
}

function factsView(model) {
  const find = (n) => model.items.find((i) => i.name === n);
  const escalation = find("escalation.triggered");
  const requested = find("handoff.requested");
  const accepted = find("handoff.accepted");
  const facts = h("section", { class: "card facts", "aria-labelledby": "facts-h" }, h("h2", { id: "facts-h" }, "The handoff"));
  const dl = h("dl", { class: "stats" });
  dl.append(
    stat("Escalated", escalation ? `yes, at ${when(escalation.event.time)}` : "no"),
    stat("Triggers", escalation ? (escalation.data.triggers || []).map(triggerText).join("; ") || "—" : "—"),
    stat("Handed to", requested ? targetText(requested.data.target) : "—"),
    stat("Taken over by", accepted ? who(accepted.data.assignee || accepted.entry.actor) : "—"),
    stat("Time to accept", seconds(model.timeToAccept)),
    stat("Time to productive takeover", seconds(model.timeToProductive)),
  );
  facts.append(dl);
  if (escalation && escalation.data.explanation) facts.append(h("p", {}, h("strong", {}, "Why: "), String(escalation.data.explanation)));
  return facts;
}

function sentimentView(model) {
  const points = model.items
    .filter((i) => i.name === "sentiment.scored" && typeof i.data.score === "number")
    .map((i) => ({ x: Date.parse(i.event.time), y: i.data.score, label: `seq ${i.e.seq} ${String(i.data.label || "")}` }));
  return h(
    "section",
    { class: "card", "aria-labelledby": "sentiment-h" },
    h("h2", { id: "sentiment-h" }, "Customer sentiment over the conversation"),
    lineChart({
      title: "Sentiment score (−1 negative … +1 positive)",
      points,
      yMin: -1,
      yMax: 1,
      format: (v) => v.toFixed(1),
      empty: "No sentiment was scored in this conversation.",
    }),
  );
}

function timelineView(trail, model, result) {
  const list = h("ol", { class: "timeline", "aria-label": "Timeline of the handoff, in log order" });
  for (const item of model.items) list.append(timelineItem(item, model, result));
  return h("section", { "aria-labelledby": "timeline-h" }, h("h2", { id: "timeline-h" }, "Timeline"), list);
}

function timelineItem(item, model) {
  const { e, entry, event, name, data, check } = item;
  const failed = check.failed.length > 0;
  const speaker = speakerOf(item);
  const li = h("li", { class: `event ${speaker} ${failed ? "failed" : "ok"}`, "data-seq": String(e.seq) });
  li.append(
    h(
      "div",
      { class: "meta" },
      h("span", { class: `badge ${failed ? "bad" : check.payload === "verified" || check.payload === "none" ? "ok" : "neutral"}` }, failed ? `failed: ${check.failed.join(", ")}` : check.payload === "verified" ? "verified" : `verified entry · payload ${check.payload}`),
      h("span", { class: "seq" }, `seq ${e.seq}`),
      h("time", { datetime: String(event.time || "") }, when(event.time)),
      h("span", { class: "type" }, name),
      h("span", { class: "who" }, who(entry.actor)),
    ),
  );
  li.append(h("div", { class: "body" }, describe(name, data, e.payload_status)));
  const redacted = model.redactions.get(String(event.id));
  if (redacted) {
    li.append(
      h(
        "ul",
        { class: "redactions", "aria-label": "Redactions in this event" },
        redacted.map((r) =>
          h("li", {}, `redacted ${String(r.entity_type || "?")} at ${String(r.path || "?")} (${String(r.operator || "?")}) by ${detectorText(r.detector)}, policy ${String(r.policy || "?")}, ${r.by}`),
        ),
      ),
    );
  }
  li.append(proofDetails(e, entry));
  return li;
}

function speakerOf(item) {
  const author = item.data.author || item.entry.actor || {};
  return { customer: "customer", ai_agent: "ai", human_agent: "human", tool: "tool" }[author.kind] || "system";
}

function textOf(content) {
  if (!content || typeof content !== "object") return content == null ? "" : String(content);
  const parts = Array.isArray(content.parts) ? content.parts : [];
  return parts.filter((p) => p && p.type === "text").map((p) => String(p.content)).join("\n");
}

function describe(name, d, status) {
  if (status !== "verified" && status !== undefined) {
    return h("p", { class: "muted" }, `Payload ${status}: only the entry header is shown.`);
  }
  switch (name) {
    case "message.created":
    case "agent.reply":
      return [
        h("p", { class: "said" }, textOf(d.content)),
        d.visibility === "internal" ? h("p", { class: "muted" }, "internal note") : null,
        d.generation ? h("p", { class: "muted" }, `generated by ${String(d.generation.provider)} ${String(d.generation.model)} (${String(d.generation.response_id)})${d.delivered === false ? ", not delivered" : ""}`) : null,
      ];
    case "reasoning.step":
      return h("p", {}, h("strong", {}, `${String(d.kind)} step ${String(d.index)}: `), textOf(d.content), h("span", { class: "muted" }, ` (${String(d.source)})`));
    case "tool.call":
      return h("p", {}, "tool ", h("code", {}, String((d.tool || {}).name)), ` ${String(d.status)}`, d.arguments ? h("code", { class: "args" }, ` ${JSON.stringify(d.arguments)}` ) : null);
    case "data.access":
      return h(
        "p",
        {},
        `${String(d.operation)} ${String((d.resource || {}).system)}/${String((d.resource || {}).type)} ${String((d.resource || {}).id)}: fields ${(d.fields || []).join(", ")}; `,
        h("span", { class: "badge neutral" }, String(d.classification)),
        ` purpose: ${String(d.purpose)}`,
        d.disclosure ? h("strong", {}, ` disclosed to ${String(d.recipient)}`) : null,
      );
    case "redaction.applied":
      return h("p", {}, `redaction of event ${String((d.target || {}).event_id)}: ${(d.redactions || []).map((r) => `${r.entity_type} by ${detectorText(r.detector)}`).join("; ")}`);
    case "sentiment.scored":
      return h("p", {}, `sentiment ${String(d.score)} (${String(d.label)}) by ${detectorText(d.detector)}`);
    case "identity.verified":
      return h("p", {}, `identity ${String(d.result)} by ${String(d.method)}; claims: ${(d.verified_claims || []).join(", ")}`);
    case "escalation.triggered":
      return [h("p", {}, h("strong", {}, "Escalated: "), String(d.explanation || "")), h("ul", {}, (d.triggers || []).map((t) => h("li", {}, triggerText(t))))];
    case "handoff.requested":
      return [
        h("p", {}, `handoff ${String(d.handoff_id)} requested to ${targetText(d.target)}`),
        d.context_package ? h("details", {}, h("summary", {}, "Context package handed over"), h("pre", {}, JSON.stringify(d.context_package, null, 2))) : null,
      ];
    case "handoff.accepted":
      return h("p", {}, `accepted by ${who(d.assignee)}`);
    case "takeover.productive":
      return h("p", {}, `productive takeover by ${who(d.by)}: ${JSON.stringify(d.action)}`);
    case "suggested_action.proposed":
      return h("p", {}, `suggested ${String((d.action || {}).name)} (confidence ${String(d.confidence)}): ${String(d.rationale)}`);
    case "suggested_action.resolved":
      return h("p", {}, `suggestion ${String(d.suggestion_id)} ${String(d.decision)} by ${who(d.decided_by)}`);
    case "conversation.started":
      return h("p", {}, `started on ${String(d.channel)} by ${who(d.customer)}`);
    case "conversation.ended":
      return h("p", {}, `ended: ${String(d.resolution || d.reason || "")}`);
    default:
      return h("pre", {}, JSON.stringify(d, null, 2));
  }
}

// Filled in when first opened: a 200-entry trail would otherwise build ~5,000 nodes nobody reads.
function proofDetails(e, entry) {
  const details = h("details", { class: "proof" }, h("summary", {}, "Entry, leaf hash, payload and inclusion proof"));
  details.addEventListener("toggle", () => {
    if (details.open && details.childElementCount === 1) append(details, proofBody(e, entry));
  });
  return details;
}

function proofBody(e, entry) {
  return [
    h("h3", {}, "Canonical entry (the bytes that were hashed)"),
    h("pre", {}, new TextDecoder().decode(safeBytes(e.entry_b64))),
    h("h3", {}, "Leaf hash"),
    h("code", {}, e.leaf_hash),
    h("h3", {}, `Payload (${String(e.payload_status)})`),
    h("pre", {}, e.payload === null || e.payload === undefined ? "—" : JSON.stringify(e.payload, null, 2)),
    h("p", { class: "muted" }, `salt ${String(e.payload_salt)}; commitment ${String(((entry || {}).payload || {}).commitment)}`),
    h("h3", {}, `Inclusion proof: leaf ${String(e.inclusion_proof.leaf_index)} of ${String(e.inclusion_proof.tree_size)}`),
    h("ol", { class: "hashes" }, (e.inclusion_proof.hashes || []).map((x) => h("li", {}, h("code", {}, x)))),
  ];
}

function safeBytes(text) {
  try {
    return b64decode(text);
  } catch {
    return new TextEncoder().encode(String(text));
  }
}

// --- formatting ------------------------------------------------------------------------------

function who(actor) {
  if (!actor || typeof actor !== "object") return "";
  const name = actor.name ? ` (${String(actor.name)}${actor.version ? " " + String(actor.version) : ""})` : "";
  return `${String(actor.kind || "?")} ${String(actor.id || "?")}${name}`;
}

function triggerText(t) {
  if (!t || typeof t !== "object") return String(t);
  const rest = Object.entries(t).filter(([k]) => k !== "type").map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : String(v)}`);
  return `${String(t.type)}${rest.length ? ` (${rest.join(", ")})` : ""}`;
}

function targetText(target) {
  if (!target || typeof target !== "object") return String(target || "—");
  return Object.entries(target).map(([k, v]) => `${k} ${String(v)}`).join(", ");
}

function detectorText(detector) {
  if (!detector || typeof detector !== "object") return String(detector || "?");
  return `${String(detector.name)} ${String(detector.version || "")}`.trim();
}

function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC");
}

function seconds(value) {
  if (value === null || value === undefined) return "—";
  if (value < 120) return `${Math.round(value)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

// Exposed for the tests (the canonicalizer against Python's rfc8785, the verifier on files).
export { b64encode };

window.addEventListener("popstate", () => render());
// A module runs once the document is parsed: #main exists.
render();
