// The rooms page (/chat): a chat over /chat/ws in the asgi-chat.v1 protocol (docs/PROTOCOL.md).
// A name, rooms with who is online, and history: nothing said while you were away is lost
// without the page saying so.
//
// How a line survives a lost connection: every line you type goes into the outbox (memory and
// localStorage) under an id of its own, and leaves it only when the server's ack for that id
// comes back. After a reconnect the page joins each room again with since: {epoch, offset}, the
// last position it saw there, so the server replays exactly what it missed; then it sends the
// outbox again with the same ids. The server publishes an id once per user (uid), so a line whose
// ack was lost is not doubled: its ack carries the first offset. That is why a guest presents
// its guest token in every hello (rooms-identity.js): a new uid would be a new user, free to
// publish the same id again. Lines are shown by offset, once each.
//
// Who is who: the welcome says who you are (a uid, a name, guest or not). A line is yours when
// its uid is yours, never because its name is: anyone may call themselves what you are called.
import { CLOSE, SignIn } from "./rooms-identity.js";
import { Roster, personOf, tagOf } from "./rooms-people.js";
import { Connection, socketUrl } from "./common.js";
import { Pacer, randomId, storage } from "./rooms-support.js";
import { RoomEntry, Timeline, showMembers } from "./rooms-view.js";

const PROTOCOL = "asgi-chat.v1";
// The whole name: without the m flag, JavaScript's $ matches at the very end only, never before a \n.
const ROOM_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const FIRST_HISTORY = 50; // lines shown when a room is first joined on this page
const EARLIER = 50; // lines per "load earlier"
const DEFAULT_ROOM = "lobby";
// Below the server's default rate limit (20 messages a second, bursts of 40; exceeding it closes
// with 1008), so that flushing a long outbox after a reconnect cannot get this page closed.
const RATE_PER_SECOND = 10;
const BURST = 20;

const KEYS = {
  name: "asgi_chat.rooms.name",
  rooms: "asgi_chat.rooms.joined",
  current: "asgi_chat.rooms.current",
  outbox: "asgi_chat.rooms.outbox.", // + a line's id: one key per line, so tabs never overwrite each other
};

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  reconnect: $("reconnect"),
  retry: $("retry"),
  me: $("me"),
  meName: $("me-name"),
  meTag: $("me-tag"),
  meGuest: $("me-guest"),
  rename: $("rename"),
  nameForm: $("name-form"),
  nameInput: $("name-input"),
  nameError: $("name-error"),
  chat: $("chat"),
  roomList: $("room-list"),
  joinForm: $("join-form"),
  joinRoom: $("join-room"),
  joinError: $("join-error"),
  membersRoom: $("members-room"),
  membersCount: $("members-count"),
  members: $("members"),
  roomTitle: $("room-title"),
  leave: $("leave"),
  loadEarlier: $("load-earlier"),
  timelines: $("timelines"),
  error: $("error"),
  composer: $("composer"),
  input: $("message-text"),
};

// --- state ---------------------------------------------------------------------------------------

let me = storage.get(KEYS.name, null); // your name as a guest, as the server normalised it
let self = null; // who the last welcome said you are: { uid, user, guest }
let welcomed = false; // this connection said hello and got its welcome
let current = null; // the Room on screen
const rooms = new Map(); // name -> Room, in the order of the room list
const outbox = new Map(); // say id -> Line: yours, not yet acked; in the order you typed them
// What a gap's reason means, for the note shown in its place.
const GAP_REASONS = {
  trimmed: "no longer in the room's history",
  limit: "too many to replay",
  lost: "lost on the way between servers, and no longer in the room's history",
};
const NOBODY = new Roster(); // the member list while it is unknown (offline)
const requests = new Map(); // request id -> { kind, room, limit }: to know what a reply answers
let requestCount = 0;

// One room as this page knows it. epoch and last are its position: where a resume starts.
class Room {
  constructor(name) {
    this.name = name;
    this.epoch = null; // null until the first joined: then join with history, later with since
    this.last = 0; // the highest offset seen (or reported lost) in this epoch
    this.joining = false; // a join sent on the current connection, not answered yet
    this.joined = false; // joined on the current connection
    this.quietUntil = 0; // offsets up to this one are history shown on first join, not news
    this.roster = new Roster(); // who is in the room, and whose lines are shown: by uid
    this.refused = ""; // why the server refused to let you back in (forbidden), shown in place
    this.unread = 0;
    this.noEarlier = false; // the server has nothing older than what is shown
    this.timeline = new Timeline(name, ui.timelines);
    this.entry = new RoomEntry(name, ui.roomList, () => select(this));
  }
}

// A line of yours: { id, room, text, at, state, item }, at the time you typed it.
function saveLine(line) {
  storage.set(KEYS.outbox + line.id, { id: line.id, room: line.room, text: line.text, at: line.at });
}

// --- sending ------------------------------------------------------------------------------------

// Every frame goes through one paced queue, in order.
const pacer = new Pacer((text) => connection.send(text), { perSecond: RATE_PER_SECOND, burst: BURST });

// A request with an id of its own, so that its reply (or error) says what it answers.
function request(kind, fields, about = {}) {
  const id = `${kind}-${++requestCount}`;
  requests.set(id, { kind, ...about });
  pacer.send({ type: kind, id, ...fields });
}

function ready(room) {
  return welcomed && room.joined && connection.connected;
}

function join(room) {
  room.joining = true;
  const { epoch, last } = room;
  const position = epoch === null ? { history: FIRST_HISTORY } : { since: { epoch, offset: last } };
  request("join", { room: room.name, ...position }, { room: room.name });
}

function sendLine(line) {
  line.state = "sending";
  rooms.get(line.room)?.timeline.mark(line.item, "sending");
  // The say's id is the line's own (not a request counter): a resend must carry the same one.
  requests.set(line.id, { kind: "say", room: line.room });
  pacer.send({ type: "say", id: line.id, room: line.room, text: line.text });
}

// After a join: what you typed for this room meanwhile, in the order you typed it.
function flush(room) {
  for (const line of outbox.values()) {
    if (line.room === room.name && line.state !== "sending") sendLine(line);
  }
}

// --- the connection -----------------------------------------------------------------------------

const signIn = new SignIn({ request, live: () => welcomed && connection.connected });

const connection = new Connection({
  url: () => socketUrl("/chat/ws"),
  protocols: () => [PROTOCOL],
  reconnect: true,
  retryRate: true, // closed for the rate: come back (and the offline queue is paced, above)
  retryCodes: [CLOSE.TOKEN_EXPIRED], // signIn.prepare() fetches a new token for the next attempt
  prepare: () => signIn.prepare(),
  onMessage: receive,
  onState(state, detail, close) {
    if (state !== "connected") lost();
    // A first visit with no token to be had: the name form says hello.
    if (state === "connected" && !signIn.hello(me)) askName();
    if (state === "closed" && close) detail = signIn.closed(close, detail, () => connection.open());
    showStatus(state, detail);
    renderComposer();
    ui.reconnect.hidden = state !== "closed";
    ui.retry.hidden = !connection.waiting; // while a reconnect waits out its backoff
  },
});

// The connection is gone (or going): rooms must be joined again, unacked lines sent again.
function lost() {
  welcomed = false;
  signIn.lost();
  pacer.clear();
  requests.clear();
  for (const room of rooms.values()) room.joining = room.joined = false;
  for (const line of outbox.values()) {
    if (line.state === "sending") {
      line.state = "queued";
      rooms.get(line.room)?.timeline.mark(line.item, "queued");
    }
  }
  for (const room of rooms.values()) renderRoom(room);
  renderComposer();
}

const STATUS_TEXT = {
  idle: () => "Not connected",
  connecting: () => "Connecting…",
  connected: () => {
    if (welcomed) return `Connected as ${self.user}`;
    if (signIn.withToken) return "Connected — signing in…";
    return me === null ? "Connected — choose a name" : `Connected — saying hello as ${me}…`;
  },
  reconnecting: (detail) => `Reconnecting — ${detail}`,
  closed: (detail) => `Closed — ${detail}`,
};

function showStatus(state, detail = "") {
  ui.status.dataset.state = state;
  ui.status.textContent = STATUS_TEXT[state](detail);
}

// --- what the server says -----------------------------------------------------------------------

const HANDLERS = {
  welcome: onWelcome,
  refreshed: (frame) => signIn.refreshed(frame),
  joined: onJoined,
  msg: onMsg,
  gap: onGap,
  presence: onPresence,
  members: onMembers,
  ack: onAck,
  left: () => {}, // the room left the page when you clicked Leave
  kicked: onKicked,
  redacted: (frame) => rooms.get(frame.room)?.timeline.removed(frame.offset),
  history: onHistory,
  error: onError,
};

function receive(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return; // not asgi-chat.v1: nothing to show
  }
  const about = frame.id === undefined ? undefined : requests.get(frame.id);
  if (frame.id !== undefined && frame.type !== "msg") requests.delete(frame.id);
  HANDLERS[frame.type]?.(frame, about);
}

function onWelcome(frame) {
  welcomed = true;
  self = signIn.welcome(frame);
  if (self.guest) setName(frame.user);
  showMe();
  showStatus("connected");
  for (const room of rooms.values()) join(room);
  renderComposer();
}

function onJoined(frame) {
  const room = rooms.get(frame.room);
  if (!room) return;
  room.joining = false;
  room.joined = true;
  if (room.epoch === null) {
    // A first join (history: K): what follows is old news, from offset TOP - K + 1 on. Should
    // the connection drop before all of it came, the resume asks for the rest, not for more.
    room.epoch = frame.epoch;
    room.quietUntil = frame.offset;
    room.last = Math.max(0, frame.offset - FIRST_HISTORY);
  }
  // Another epoch than ours: a gap "reset" follows, and says so.
  room.refused = "";
  // members: who, by uid; a server from before identity sends names only (presence).
  room.roster.reset((frame.members ?? (frame.presence ?? []).map((user) => ({ user }))).map(personOf));
  renderRoom(room);
  flush(room);
  renderComposer(); // lines typed now are sent at once
}

// A moderator put you out of a room: you are no longer in it (a ban would refuse a rejoin).
function onKicked(frame) {
  const room = rooms.get(frame.room);
  if (!room) return;
  room.joined = room.joining = false;
  const why = frame.reason ? `: ${frame.reason}` : "";
  room.timeline.note(`A moderator removed you from this room${why}`, room.last + 1);
  renderRoom(room);
  renderComposer();
}

function onMsg(frame) {
  const room = rooms.get(frame.room);
  if (!room || !show(room, frame)) return;
  room.last = Math.max(room.last, frame.offset);
  if (room === current) renderEarlier(room);
  if (room !== current && !isMine(personOf(frame)) && frame.offset > room.quietUntil) {
    room.unread += 1;
    renderEntry(room);
  }
}

// Show one msg frame, once: false if its offset is already on screen. The msg of a line of
// yours carries the id you gave it: it settles the line you see rather than adding a second one.
// Yours means your uid: a say id is only unique per user, and a name is anyone's.
function show(room, frame) {
  if (frame.redacted) {
    room.timeline.removed(frame.offset); // removed by a moderator: its place stays, empty
    return true;
  }
  if (room.timeline.has(frame.offset)) return false;
  const person = personOf(frame);
  const mine = isMine(person);
  room.roster.seen(person);
  const shared = room.roster.shared(person.user);
  const line = mine ? outbox.get(frame.id) : undefined;
  if (line?.item && line.room === room.name) {
    room.timeline.settle(line.item, frame);
    room.timeline.identify(line.item, person, shared);
  } else {
    room.timeline.message(frame, person, mine, shared);
  }
  drawTags(room);
  return true;
}

function isMine(person) {
  return self !== null && person.uid === self.uid;
}

// Names that became shared (a second Alice came, or wrote): their tags, on every line shown and
// in the member list.
function drawTags(room) {
  const names = room.roster.takeShared();
  for (const name of names) room.timeline.showTags(name);
  if (names.length > 0 && room === current) renderRoom(room);
}

function onGap(frame) {
  const room = rooms.get(frame.room);
  if (!room) return;
  if (frame.reason === "reset") {
    // Our position belongs to a history that no longer exists: what was said meanwhile is unknown.
    room.timeline.newEra();
    const why = "the server restarted, or the room was forgotten";
    room.timeline.note(`History was reset (${why}): what was said while you were away is unknown`, 0);
    // The new position is the server's: the next line it sends is frame.offset + 1. After a join
    // that is the room's top (the lines before it are old news, fetched below); when the reset
    // comes while joined (the server lost the room's history meanwhile), 0: the new history's
    // lines follow, every one of them.
    room.epoch = frame.epoch;
    room.last = frame.offset;
    room.quietUntil = frame.offset; // the new history's lines up to here are not unread news
    room.noEarlier = false;
    // What the new history holds already: the lines said since it began.
    if (frame.offset > 0) askHistory(room, frame.offset + 1);
  } else {
    const count = frame.to - frame.from + 1;
    const why = GAP_REASONS[frame.reason] ?? frame.reason;
    const lines = count === 1 ? "1 message" : `${count} messages`;
    room.timeline.note(`${lines} could not be recovered (${why})`, frame.from);
    room.last = Math.max(room.last, frame.to);
  }
  renderRoom(room);
}

// Who joined and who left in one window of the server's (ASGI_CHAT_PRESENCE_INTERVAL): set
// operations keyed by uid, each harmless when already so (someone listed joining again changes
// nothing). Two people of one name are two entries; one person in two tabs is one.
function onPresence(frame) {
  const room = rooms.get(frame.room);
  if (!room) return;
  for (const entry of frame.join ?? []) room.roster.join(personOf(entry));
  for (const entry of frame.leave ?? []) room.roster.leave(personOf(entry));
  drawTags(room);
  renderRoom(room);
}

// The answer to a presence request: the whole membership, in place of what the page had.
function onMembers(frame) {
  const room = rooms.get(frame.room);
  if (!room || !Array.isArray(frame.members)) return;
  room.roster.reset(frame.members.map(personOf));
  drawTags(room);
  renderRoom(room);
}

function onAck(frame) {
  const line = outbox.get(frame.id);
  if (!line) return;
  const room = rooms.get(line.room);
  if (room) {
    if (room.timeline.has(frame.offset) && !line.item.dataset.offset) {
      room.timeline.remove(line.item); // already shown (from a replay that came first)
    } else {
      room.timeline.settle(line.item, { offset: frame.offset });
      room.timeline.mark(line.item, "sent");
    }
  }
  forget(line);
  renderComposer();
}

function forget(line) {
  outbox.delete(line.id);
  storage.remove(KEYS.outbox + line.id);
}

function onHistory(frame, about) {
  const room = rooms.get(frame.room);
  if (!room) return;
  room.timeline.keepPosition(() => {
    for (const message of frame.messages) show(room, message);
  });
  if (frame.messages.length < (about?.limit ?? EARLIER)) room.noEarlier = true;
  renderRoom(room);
}

function onError(frame, about) {
  const text = `${frame.message} (${frame.code})`;
  if (frame.code === "unauthorized") {
    signIn.refused(frame.message); // the server closes with 4401 next: the status says why
    return;
  }
  if (about?.kind === "hello") {
    welcomed = false;
    askName(text); // bad_name: the connection stays open for the next hello
    return;
  }
  if (about?.kind === "refresh") {
    signIn.refreshFailed(); // not this time (the server's keys out of reach): again shortly
    return;
  }
  if (about?.kind === "leave") return; // gone from the page already, whatever the server says
  if (about?.kind === "join") {
    const room = rooms.get(about.room);
    if (room) room.joining = false;
    if (room && frame.code === "forbidden" && room.epoch !== null) {
      // A room you were in refuses you now (made private, or a ban): it stays on the page with
      // what it showed, and says so in place; joined again after the next reconnect.
      if (room.refused !== frame.message) {
        room.timeline.note(`You cannot rejoin #${room.name}: ${frame.message}`, room.last + 1);
      }
      room.refused = frame.message;
      renderRoom(room);
      renderComposer();
      return;
    }
    // unavailable: the room stays, joined again after the next reconnect.
    if (room && frame.code !== "unavailable") removeRoom(room);
    showError(ui.joinError, `Cannot join ${about.room}: ${text}`);
    return;
  }
  const line = about?.kind === "say" ? outbox.get(frame.id) : undefined;
  if (line && frame.code !== "unavailable") {
    // Refused for good (too long, ...): not sent again; its text goes back to the box to fix.
    rooms.get(line.room)?.timeline.mark(line.item, "failed", frame.message);
    forget(line);
    if (ui.input.value === "") ui.input.value = line.text;
  } else if (line) {
    line.state = "queued"; // the server's store is down: sent again after the next reconnect
    rooms.get(line.room)?.timeline.mark(line.item, "queued");
  }
  showError(ui.error, text);
}

// --- what you do --------------------------------------------------------------------------------

function say(text) {
  const room = current;
  const line = { id: randomId("say-"), room: room.name, text, at: Date.now(), state: "queued" };
  line.item = room.timeline.pending(myself(), text, "queued");
  outbox.set(line.id, line);
  saveLine(line);
  if (ready(room)) sendLine(line);
  renderComposer();
}

// The latest lines before offset `before` (for "load earlier", and after a reset).
function askHistory(room, before) {
  request("history", { room: room.name, before, limit: EARLIER }, { room: room.name, limit: EARLIER });
}

function addRoom(name) {
  let room = rooms.get(name);
  if (!room) {
    room = new Room(name);
    rooms.set(name, room);
    saveRooms();
    if (welcomed) join(room);
  }
  select(room);
}

function removeRoom(room) {
  // A join not answered yet is answered first (the server reads in order): leave after it.
  if ((room.joined || room.joining) && welcomed) request("leave", { room: room.name }, { room: room.name });
  for (const line of outbox.values()) if (line.room === room.name) forget(line);
  rooms.delete(room.name);
  room.timeline.list.remove();
  room.entry.remove();
  saveRooms();
  select(current === room ? (rooms.values().next().value ?? null) : current);
}

function saveRooms() {
  storage.set(KEYS.rooms, [...rooms.keys()]);
}

function select(room) {
  current = room;
  for (const other of rooms.values()) other.timeline.list.hidden = other !== room;
  if (room) {
    room.unread = 0;
    storage.set(KEYS.current, room.name);
    room.timeline.scrollToEnd();
  }
  for (const other of rooms.values()) renderEntry(other);
  renderRoom(room);
  renderComposer();
}

// A guest's name, kept for the next visit. A name from a token is not kept: should the token
// URL later say nobody is signed in, a guest is asked for a name rather than borrowing it.
function setName(name) {
  me = name;
  storage.set(KEYS.name, name);
}

// You, as your lines show you until the server has numbered them: the welcome's uid once known.
function myself() {
  return self ?? { uid: null, user: me ?? "you", guest: false };
}

// "You are Alice k3v9 (guest)": your own tag always, so you can tell others which Alice you are.
function showMe() {
  const { uid, user, guest } = myself();
  ui.meName.textContent = user;
  ui.meTag.dataset.tag = uid ? tagOf(uid) : "";
  ui.meTag.hidden = !uid;
  ui.meGuest.hidden = !guest;
  ui.rename.hidden = self !== null && !self.guest; // a token's name is the operator's to change
  ui.me.hidden = false;
}

function askName(problem = "") {
  ui.nameForm.hidden = false;
  ui.chat.hidden = true;
  ui.nameInput.value = me ?? "";
  ui.nameError.textContent = problem;
  ui.nameError.hidden = problem === "";
  ui.nameInput.focus();
}

// --- drawing ------------------------------------------------------------------------------------

function renderEntry(room) {
  const { joined, unread } = room;
  room.entry.show({ current: room === current, joined, online: room.roster.members.size, unread });
  const total = [...rooms.values()].reduce((sum, each) => sum + each.unread, 0);
  document.title = `${total ? `(${total}) ` : ""}${current ? `#${current.name} · ` : ""}Rooms · asgi_chat`;
}

// The room's entry in the list and, if it is the one on screen, its title, members and button.
function renderRoom(room) {
  if (room) renderEntry(room);
  if (room !== current) return;
  ui.roomTitle.textContent = room ? `#${room.name}` : "No room: join one";
  ui.leave.hidden = !room;
  ui.membersRoom.textContent = room ? `#${room.name}` : "";
  // Who is online is known only while joined: offline, the last list would be a guess.
  const known = room?.joined ?? false;
  const count = showMembers(ui.members, known ? room.roster : NOBODY, self?.uid);
  ui.membersCount.textContent = known ? String(count) : connection.connected ? "…" : "unknown while offline";
  renderEarlier(room);
}

// "Load earlier" while the room may hold lines older than the oldest shown.
function renderEarlier(room) {
  const oldest = room?.timeline.oldest ?? Infinity;
  ui.loadEarlier.hidden = !room || room.noEarlier || oldest <= 1 || oldest === Infinity;
}

// The message box says what happens to a line typed now: it follows the connection, so it is
// drawn again at every change of it (onState, welcome, joined) as well as of the outbox.
function renderComposer() {
  const queued = [...outbox.values()].filter((line) => line.state === "queued").length;
  ui.input.disabled = current === null;
  ui.composer.querySelector("button").disabled = current === null;
  const waiting = queued ? ` (${queued} waiting)` : "";
  let placeholder = `Offline: lines are sent when you are back${waiting}`;
  if (current === null) placeholder = "Join a room to write";
  else if (ready(current)) placeholder = `Message #${current.name}`;
  else if (current.refused) placeholder = `Not in #${current.name}: ${current.refused}${waiting}`;
  else if (connection.connected) placeholder = `Joining #${current.name}: lines are sent once you are in${waiting}`;
  ui.input.placeholder = placeholder;
}

// An error, next to the input it concerns (ui.error or ui.joinError), until that input is used again.
function showError(box, text) {
  box.textContent = text;
  box.hidden = false;
}

// --- wiring -------------------------------------------------------------------------------------

ui.nameForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.nameInput.value.trim();
  if (name === "") return;
  const renamed = welcomed && name !== me;
  me = name; // the server's welcome gives it back normalised
  ui.nameForm.hidden = true;
  ui.chat.hidden = false;
  if (connection.connected && !welcomed) signIn.guestHello(me);
  else if (renamed || !connection.connected) connection.open(); // hello comes once per connection
  else showStatus("connected");
  ui.input.focus();
});

ui.rename.addEventListener("click", () => askName());

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  // Room names are lower case: "General Chat" means general-chat.
  const name = ui.joinRoom.value.trim().toLowerCase().replace(/\s+/g, "-");
  if (!ROOM_NAME.test(name)) {
    showError(ui.joinError, "A room name is 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit");
    return;
  }
  ui.joinError.hidden = true;
  ui.joinRoom.value = "";
  addRoom(name);
});

ui.leave.addEventListener("click", () => current && removeRoom(current));

ui.loadEarlier.addEventListener("click", () => {
  const room = current;
  if (!room || !ready(room)) return;
  askHistory(room, room.timeline.oldest);
});

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.input.value;
  if (text.trim() === "" || current === null) return;
  ui.error.hidden = true;
  say(text);
  ui.input.value = "";
  ui.input.focus();
});

ui.reconnect.addEventListener("click", () => connection.open());
ui.retry.addEventListener("click", () => connection.retryNow());

// --- start --------------------------------------------------------------------------------------

function restore() {
  const names = storage.get(KEYS.rooms, [DEFAULT_ROOM]);
  for (const name of Array.isArray(names) ? names : []) {
    if (typeof name === "string" && ROOM_NAME.test(name) && !rooms.has(name)) rooms.set(name, new Room(name));
  }
  // Lines typed before a reload (or in a tab since closed): still yours to send, same ids.
  const saved = storage.keys(KEYS.outbox).map((key) => storage.get(key, null));
  saved.sort((a, b) => (a?.at ?? 0) - (b?.at ?? 0));
  for (const entry of saved) {
    const room = entry && rooms.get(entry.room);
    if (!room || typeof entry.text !== "string" || typeof entry.id !== "string") continue;
    const line = { id: entry.id, room: entry.room, text: entry.text, at: entry.at, state: "queued" };
    line.item = room.timeline.pending(myself(), line.text, "queued");
    outbox.set(line.id, line);
  }
  const remembered = rooms.get(storage.get(KEYS.current, null));
  select(remembered ?? rooms.values().next().value ?? null);
}

restore();
// Whether there is a token to fetch decides whether to ask for a name: a signed-in person is
// never asked. A server out of reach now is asked again before each attempt (prepare()).
const config = await signIn.start();
if (me !== null || config?.token_url) {
  if (me !== null) showMe();
  ui.chat.hidden = false;
  connection.open();
} else {
  showStatus("idle");
  askName();
}
