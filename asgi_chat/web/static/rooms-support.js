// What the rooms page needs besides the protocol and the DOM: storage that may be refused, ids,
// and a pace for what it sends.

// localStorage as JSON values, for a page that works without it: a private window may refuse
// it, a full one may throw. The page then forgets on reload, nothing worse.
export const storage = {
  get(key, fallback) {
    try {
      const value = localStorage.getItem(key);
      return value === null ? fallback : JSON.parse(value);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {
      // refused or full: see above
    }
  },
  remove(key) {
    try {
      localStorage.removeItem(key);
    } catch {
      // as above
    }
  },
  keys(prefix) {
    try {
      return Object.keys(localStorage).filter((key) => key.startsWith(prefix));
    } catch {
      return [];
    }
  },
};

// 18 random hex digits after prefix: unique enough for a line's id (the server allows 64
// characters). crypto.randomUUID() would do, but exists only in a secure context.
export function randomId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return prefix + Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * A token bucket in front of send(text): at most burst frames at once, then perSecond a second,
 * the rest waiting in order. send(text) returns false when there is no connection to send on,
 * and what waits is dropped (the page rebuilds it after the reconnect).
 */
export class Pacer {
  #send;
  #perSecond;
  #burst;
  #tokens;
  #stamp = performance.now();
  #queue = [];
  #timer = null;

  constructor(send, { perSecond, burst }) {
    this.#send = send;
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#tokens = burst;
  }

  send(frame) {
    this.#queue.push(JSON.stringify(frame));
    this.#drain();
  }

  clear() {
    this.#queue = [];
    clearTimeout(this.#timer);
    this.#timer = null;
  }

  #drain() {
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#stamp) / 1000) * this.#perSecond);
    this.#stamp = now;
    while (this.#queue.length > 0 && this.#tokens >= 1) {
      if (!this.#send(this.#queue.shift())) return this.clear();
      this.#tokens -= 1;
    }
    if (this.#queue.length > 0 && this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#drain();
      }, ((1 - this.#tokens) / this.#perSecond) * 1000);
    }
  }
}
