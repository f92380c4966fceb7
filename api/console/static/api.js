// The console's only way to the server: the public HTTP API, same origin, the token as a bearer
// header and nowhere else (never in a URL, never a cookie).

const TOKEN_KEY = "handoff-ledger.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(kind, status, detail) {
    super(detail);
    this.kind = kind; // unauthenticated, forbidden, not-found, invalid, unavailable, network, ...
    this.status = status;
    this.detail = detail;
  }
}

function kindOf(status) {
  if (status === 401) return "unauthenticated";
  if (status === 403) return "forbidden";
  if (status === 404) return "not-found";
  if (status === 413) return "too-large";
  if (status === 429) return "rate-limited";
  if (status === 400 || status === 422) return "invalid";
  return "unavailable";
}

export function segment(value) {
  return encodeURIComponent(String(value));
}

// GET `path` (an API path) as JSON, or as text with {text: true}; {auth: false} for the public
// reads (checkpoint, verifier keys).
export async function get(path, { text = false, auth = true } = {}) {
  const headers = { Accept: text ? "text/plain" : "application/json" };
  const bearer = token();
  if (auth && bearer) headers.Authorization = `Bearer ${bearer}`;
  let response;
  try {
    response = await fetch(path, {
      headers,
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError("network", 0, "The ledger server cannot be reached.");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const problem = await response.json();
      if (problem && typeof problem.detail === "string") detail = problem.detail;
    } catch {
      // not a problem document: keep the status text
    }
    throw new ApiError(kindOf(response.status), response.status, detail);
  }
  return text ? response.text() : response.json();
}

// POST a JSON body; the answer as a Blob (exports are files), with its headers.
export async function postForBlob(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError("network", 0, "The ledger server cannot be reached.");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      // keep the status text
    }
    throw new ApiError(kindOf(response.status), response.status, detail);
  }
  return { blob: await response.blob(), headers: response.headers };
}
