// How the rooms page signs in (docs/identity.md, "The /chat page"): with a token from the
// operator's backend when the server names a token URL, else as a guest with a name; how it
// keeps a token fresh on a live connection; and what the server's close codes of its own (4001,
// 4401, 4403) ask the page to do.
import { personOf } from "./rooms-people.js";
import { storage } from "./rooms-support.js";

const GUEST_TOKEN_KEY = "asgi_chat.rooms.guest_token";
// Before identity, a server had no /chat/config: everyone was a guest.
const DEFAULT_CONFIG = { token_url: null, guests: true };

// The close codes of asgi-chat.v1's own range (RFC 6455 7.4.2) and what each asks of the page.
export const CLOSE = {
  TOKEN_EXPIRED: 4001, // get a new token and reconnect: Connection retries it (retryCodes)
  UNAUTHORIZED: 4401, // the token was refused: never again with the same token
  DISCONNECTED: 4403, // a moderator ended this user's connections: stay away until the user acts
};

const REFRESH_RETRY_MS = 5000; // a token refresh that failed is tried again this much later

/** An error that stops the connection for good (Connection's prepare(): retry false). */
class SignInStopped extends Error {
  retry = false;
}

/**
 * What the server says about signing in: { token_url, guests } from GET /chat/config. A server
 * without that endpoint (404) is one from before identity: guests. Anything else (the server
 * down) throws, so that the caller tries again with its next attempt to connect.
 */
async function loadConfig() {
  const response = await fetch("/chat/config", { cache: "no-store" });
  if (response.status === 404) return DEFAULT_CONFIG;
  if (!response.ok) throw new Error(`the chat's configuration is unavailable (HTTP ${response.status})`);
  const config = await response.json();
  return {
    token_url: typeof config.token_url === "string" && config.token_url !== "" ? config.token_url : null,
    guests: config.guests !== false,
  };
}

/**
 * A token from the operator's token URL, with the user's cookies (credentials: "include", as
 * Centrifugo's getToken). The contract (docs/identity.md): 200 with {"token": "<JWT>"} for a
 * signed-in user; 401 or 403, or {"token": null}, for nobody signed in (null here); anything
 * else (a 5xx, the backend down) throws, and the caller tries again later.
 */
async function fetchToken(url) {
  let response;
  try {
    response = await fetch(url, { credentials: "include", cache: "no-store" });
  } catch {
    throw new Error("cannot reach the sign-in service");
  }
  if (response.status === 401 || response.status === 403) return null;
  if (!response.ok) throw new Error(`the sign-in service failed (HTTP ${response.status})`);
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error("the sign-in service did not answer with JSON");
  }
  if (body?.token === null || body?.token === undefined) return null;
  if (typeof body.token !== "string" || body.token === "") throw new Error("the sign-in service sent no token");
  return body.token;
}

// The token that keeps a guest the same guest (the same uid) across connections, reloads and
// tabs: every welcome hands a fresh one, valid 30 days, and the next hello presents it.
const guestToken = {
  get: () => storage.get(GUEST_TOKEN_KEY, null),
  set: (token) => storage.set(GUEST_TOKEN_KEY, token),
  forget: () => storage.remove(GUEST_TOKEN_KEY),
};

/**
 * Milliseconds from now until a token that expires at `expires` (ms since the epoch) should be
 * replaced: a third of its remaining life before, at most a minute before. So a 10-minute token
 * is refreshed a minute early and a 3-second one at 2 s, and a slow token service or a busy
 * tab has time to spare. The server closes a connection ASGI_CHAT_TOKEN_GRACE seconds after
 * exp, not at exp: a clock a little off either way costs nothing.
 */
export function refreshDelay(expires, now = Date.now()) {
  const remaining = expires - now;
  return Math.max(0, remaining - Math.min(60000, remaining / 3));
}

/**
 * One page's sign-in, across its connections. request(kind, fields) sends a request; live() says
 * whether the connection that said hello is still the one open and welcomed.
 */
export class SignIn {
  config = null; // GET /chat/config: { token_url, guests }, once it could be read
  #token = null; // from the token URL, for this connection's hello
  #kind = null; // how this connection said hello: "token", "guest token" or "name"
  #refusal = ""; // why the server refused (its unauthorized error), for the 4401 that follows
  #generation = 0; // one per hello: a token that comes back late knows whether it is still wanted
  #timer = null; // the next refresh
  #request;
  #live;

  constructor({ request, live }) {
    this.#request = request;
    this.#live = live;
  }

  // True while this connection signs in with a token: no name to ask for.
  get withToken() {
    return this.#token !== null;
  }

  // The configuration, read at start-up to know whether to ask for a name; null when the server
  // is out of reach (prepare() asks again).
  async start() {
    this.config = await loadConfig().catch(() => null);
    return this.config;
  }

  // Connection's prepare(), before every attempt: the configuration (once), and with a token URL
  // a token fresh for this connection's hello. A failure is retried with the backoff, as a lost
  // connection, except nobody signed in where there are no guests: that waits for Reconnect.
  async prepare() {
    try {
      this.config ??= await loadConfig();
    } catch (error) {
      throw new Error(error instanceof TypeError ? "cannot reach the server" : error.message);
    }
    this.#token = this.config.token_url ? await fetchToken(this.config.token_url) : null;
    if (this.#token === null && !this.config.guests) {
      const why = this.config.token_url ? "you are not signed in: sign in, then press Reconnect" : "no way to sign in";
      throw new SignInStopped(`${why} (this chat has no guests)`);
    }
  }

  // The first frame of a connection: the token when the operator's backend gave one (its name
  // wins), else a guest's hello with `name`. False when there is neither: ask the person's name.
  hello(name) {
    this.#generation += 1;
    this.#refusal = "";
    if (this.#token !== null) {
      this.#kind = "token";
      this.#request("hello", { token: this.#token });
      return true;
    }
    if (name === null) return false;
    this.guestHello(name);
    return true;
  }

  // A guest's hello, with the guest token that keeps its uid when this browser has one.
  guestHello(name) {
    const token = guestToken.get();
    this.#kind = token ? "guest token" : "name";
    this.#request("hello", token ? { user: name, token } : { user: name });
  }

  // Who the welcome says you are, { uid, user, guest }; a guest's new token kept for next time.
  welcome(frame) {
    const person = personOf(frame);
    if (person.guest && typeof frame.token === "string") guestToken.set(frame.token);
    this.refreshed(frame);
    return person;
  }

  // Before the token in hand expires (the welcome's or the last refreshed frame's expires), a
  // fresh one from the token URL, sent on this connection: it stays open. Guests have none.
  refreshed({ expires }) {
    this.lost();
    if (typeof expires !== "number" || this.#kind !== "token" || !this.config?.token_url) return;
    this.#timer = setTimeout(() => this.#refresh(), refreshDelay(expires));
  }

  // A refresh the server could not take now (not unauthorized: that closes with 4401).
  refreshFailed() {
    this.lost();
    this.#timer = setTimeout(() => this.#refresh(), REFRESH_RETRY_MS);
  }

  // An unauthorized error: the server closes with 4401 next, and closed() says why with this.
  refused(message) {
    this.#refusal = message;
  }

  // The connection is gone: the next one's hello carries a fresh token, nothing to refresh.
  lost() {
    clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * What a close of the server's own tells the person (the status line's detail), and does. 4001
   * never comes here: the Connection reconnects after it (retryCodes), and prepare() fetches a
   * new token first. reopen() connects again.
   */
  closed({ code, reason }, detail, reopen) {
    const why = this.#refusal || reason;
    if (code === CLOSE.UNAUTHORIZED && this.#kind === "guest token") {
      // This browser's guest token is no longer good (the server's secret changed: a restart
      // without ASGI_CHAT_SECRET). Not again with it: come back as a new guest, with a new uid.
      guestToken.forget();
      queueMicrotask(reopen); // once this close has been reported
      return `your guest pass was refused (${why}): signing in as a new guest`;
    }
    if (code === CLOSE.UNAUTHORIZED) return `your sign-in was refused: ${why} (${code})`;
    if (code === CLOSE.DISCONNECTED) return `a moderator disconnected you${reason ? `: ${reason}` : ""} (${code})`;
    return detail;
  }

  async #refresh() {
    this.#timer = null;
    const generation = this.#generation;
    let token;
    try {
      token = await fetchToken(this.config.token_url);
    } catch {
      token = undefined; // the token service is down: try again shortly
    }
    if (generation !== this.#generation || !this.#live()) return; // that connection is gone
    if (typeof token === "string") this.#request("refresh", { token });
    else if (token === undefined) this.refreshFailed();
    // null: signed out meanwhile. The server ends the connection at expiry (4001), and the
    // reconnect finds out who this is now.
  }
}
