// The API client: the session's tokens and authenticated requests.
//
// The access token lives only in memory. The refresh token is kept in sessionStorage so that a
// reload of this tab stays signed in (it is gone when the tab closes, and no other site can read
// it); it is exchanged for a new pair a minute before the access token expires, and on any 401.

const REFRESH_KEY = "chatserver.refresh";

/** A failed request: the problem details' title, detail and field errors, as one message. */
export class ApiError extends Error {
  constructor(status, problem) {
    const fields = problem && problem.errors
      ? Object.entries(problem.errors).map(([field, messages]) => `${field}: ${messages.join(" ")}`).join(" ")
      : "";
    super(fields || (problem && (problem.detail || problem.title)) || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem;
  }

  static async from(response) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not JSON */ }
    return new ApiError(response.status, problem);
  }
}

export class Session {
  constructor() {
    this.access = null;
    this.expiresAt = 0;
    this.user = null;
    this.refreshing = null;
    this.timer = null;
    this.onSignedOut = () => {};
  }

  get refreshToken() { return sessionStorage.getItem(REFRESH_KEY); }

  /** Takes a `Session` or token pair from the API. */
  start(tokens) {
    this.access = tokens.access;
    this.expiresAt = Date.now() + tokens.expires_in * 1000;
    if (tokens.user) this.user = tokens.user;
    sessionStorage.setItem(REFRESH_KEY, tokens.refresh);
    clearTimeout(this.timer);
    const early = Math.max(5, tokens.expires_in - 60) * 1000;
    this.timer = setTimeout(() => this.refresh().catch(() => {}), early);
  }

  clear() {
    clearTimeout(this.timer);
    this.access = null;
    this.user = null;
    this.expiresAt = 0;
    sessionStorage.removeItem(REFRESH_KEY);
  }

  /** A current access token, refreshed first when it is about to expire. */
  async accessToken() {
    if (!this.access || Date.now() > this.expiresAt - 15000) await this.refresh();
    return this.access;
  }

  /** Exchanges the refresh token for a new pair; one exchange at a time. */
  refresh() {
    if (this.refreshing) return this.refreshing;
    this.refreshing = (async () => {
      const refresh = this.refreshToken;
      if (!refresh) throw new ApiError(401, { title: "Not signed in" });
      const response = await fetch("/auth/refresh/", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh }),
      });
      if (!response.ok) {
        const error = await ApiError.from(response);
        if (response.status === 401) { this.clear(); this.onSignedOut(); }
        throw error;
      }
      this.start(await response.json());
    })().finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  /** An authenticated JSON request; a 401 refreshes the tokens and tries once more. */
  async request(method, path, body) {
    const response = await this.fetch(path, { method, body });
    return response.status === 204 ? null : response.json();
  }

  /** An authenticated request whose answer is read by the caller; throws the problem of a failure. */
  async fetch(path, { method = "GET", body, accept = "application/json" } = {}) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers = { Accept: accept, Authorization: "Bearer " + (await this.accessToken()) };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      if (response.status === 401 && attempt === 0) { this.access = null; continue; }
      if (!response.ok) throw await ApiError.from(response);
      return response;
    }
    throw new ApiError(401, { title: "Not signed in" });
  }
}

/** Signs in or up without a session yet. */
export async function signIn(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) throw await ApiError.from(response);
  return response.json();
}
