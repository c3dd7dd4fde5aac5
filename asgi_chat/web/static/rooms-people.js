// Who is who on the rooms page: a person is a uid (who they are: nobody else can have it), a name
// (what they are called: anyone may have the same one) and whether they are a guest. The page
// recognises you by your uid, never by your name, and tells two people of one name apart by a
// short tag made from each uid.

// Crockford's base 32, as asgi_chat.identity.names.tag: no I, L, O or U, so a tag reads aloud.
const TAG_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const TAG_CHARS = 4;
const tags = new Map(); // uid -> tag: a uid's tag never changes, and a room repeats its uids

/**
 * The uid's tag: four characters of base 32 of its SHA-256 (the top 20 bits), exactly as the
 * server's asgi_chat.identity.names.tag makes it, so that the page, a bot and the docs agree on
 * "Alice k3v9". Not a secret and not a proof: it tells people apart at a glance.
 */
export function tagOf(uid) {
  let tag = tags.get(uid);
  if (tag === undefined) {
    const top20 = sha256(uid)[0] >>> 12;
    tag = "";
    for (let i = TAG_CHARS - 1; i >= 0; i--) tag += TAG_ALPHABET[(top20 >>> (5 * i)) & 31];
    tags.set(uid, tag);
  }
  return tag;
}

/**
 * The people a room's page has seen: its members now, and the authors of the lines on screen. A
 * name is shared when more than one uid goes by it among them, and then every place that name is
 * shown gets its tag. The authors count too: when one Alice has left and another came, their
 * lines still sit one above the other and must not read as one person's.
 */
export class Roster {
  members = new Map(); // uid -> { uid, user, guest }: who is in the room now
  #uidsByName = new Map(); // name -> Set of uids, members and authors alike, never forgotten
  #newlyShared = []; // names shared since takeShared() was last asked

  // The room's whole membership, from a joined or members frame: [{ uid, user, guest }, ...].
  reset(people) {
    this.members.clear();
    for (const person of people) this.join(person);
  }

  // A presence frame's entries are set operations keyed by uid: joining twice changes nothing.
  join(person) {
    this.members.set(person.uid, person);
    this.seen(person);
  }

  leave(person) {
    this.members.delete(person.uid);
  }

  // A person the page shows: a member, or a line's author.
  seen({ uid, user }) {
    let uids = this.#uidsByName.get(user);
    if (uids === undefined) this.#uidsByName.set(user, (uids = new Set()));
    if (uids.has(uid)) return;
    uids.add(uid);
    if (uids.size === 2) this.#newlyShared.push(user);
  }

  shared(name) {
    return (this.#uidsByName.get(name)?.size ?? 0) > 1;
  }

  // The names that became shared since the last call: the page draws their tags everywhere,
  // on the lines already shown too.
  takeShared() {
    const names = this.#newlyShared;
    this.#newlyShared = [];
    return names;
  }
}

// Who a frame names: a msg, or an entry of a presence, joined or members frame. A server from
// before identity sends no uid: the name stands in for one, which is all that server knew.
export function personOf(frame) {
  const user = String(frame.user ?? "");
  return { uid: typeof frame.uid === "string" ? frame.uid : `name:${user}`, user, guest: frame.guest === true };
}

// --- SHA-256 -------------------------------------------------------------------------------------

// SHA-256 (FIPS 180-4) of a string's UTF-8 bytes, as eight 32-bit words. crypto.subtle has one,
// but only in a secure context (https, or localhost), and only asynchronously; the page also runs
// on plain http behind a LAN address, and draws a tag while it draws the line. A uid is short,
// so this costs microseconds, once per uid (tagOf keeps the result).
const K = Uint32Array.of(
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
);

const rotr = (x, n) => (x >>> n) | (x << (32 - n));

export function sha256(text) {
  const bytes = new TextEncoder().encode(text);
  // The message, a 1 bit, zeros, and its length in bits as 64 bits: a whole number of 64-byte blocks.
  const size = Math.ceil((bytes.length + 9) / 64) * 64;
  const padded = new Uint8Array(size);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(size - 8, Math.floor(bytes.length / 0x20000000)); // the length's bits above 32
  view.setUint32(size - 4, (bytes.length * 8) >>> 0);

  const hash = Uint32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);
  const w = new Uint32Array(64); // a Uint32Array wraps every sum modulo 2**32, as the standard adds
  for (let block = 0; block < size; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, h] = hash;
    for (let i = 0; i < 64; i++) {
      const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      [h, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    hash[0] += a;
    hash[1] += b;
    hash[2] += c;
    hash[3] += d;
    hash[4] += e;
    hash[5] += f;
    hash[6] += g;
    hash[7] += h;
  }
  return hash;
}
