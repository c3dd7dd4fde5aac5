// How the rooms page draws a room: its timeline, a list of messages in offset order with a note
// wherever something is missing. Only the DOM lives here; rooms.js decides what to show.
// Every piece of user text goes in through textContent, never innerHTML.
//
// A person's name is drawn with two marks beside it, both empty elements whose words come from
// style.css (::before), so that an element's text stays the name alone: a tag (.tag, its
// data-tag from rooms-people.js's tagOf), shown where the name is shared, and .guest for a guest.
import { tagOf } from "./rooms-people.js";

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const DAY_AND_TIME = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

// What the small line under a line of your own says, by its state.
const STATE_LABELS = {
  queued: "queued: sent when you are back online",
  sending: "sending…",
  sent: "sent",
  failed: "not sent",
};

// ts is the server's time in milliseconds since the Unix epoch; today's lines show the time
// alone, older ones their day too.
function timeElement(ts) {
  const date = new Date(ts);
  const element = document.createElement("time");
  element.dateTime = date.toISOString();
  element.title = FULL.format(date);
  const today = date.toDateString() === new Date().toDateString();
  element.textContent = (today ? TIME : DAY_AND_TIME).format(date);
  return element;
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

/**
 * One room's timeline: an <ol> of messages and notes, sorted by (era, key). The key of a message
 * is its offset; a note about missing offsets A..B sits just before A (key A - 0.5). An era is one
 * history of the room: the server's restart starts a new one (offsets start again from 1), so
 * what was shown before stays above it. Lines of your own not yet given an offset stay last.
 */
export class Timeline {
  #byOffset = new Map(); // offset -> <li>, in the current era only: dedupe by offset
  #era = 0;

  constructor(room, container) {
    this.list = document.createElement("ol");
    this.list.className = "timeline";
    this.list.dataset.room = room;
    this.list.hidden = true;
    container.append(this.list);
  }

  has(offset) {
    return this.#byOffset.has(offset);
  }

  // The oldest offset shown in the current era (Infinity: none), for "load earlier".
  get oldest() {
    let oldest = Infinity;
    for (const offset of this.#byOffset.keys()) oldest = Math.min(oldest, offset);
    return oldest;
  }

  // A new history begins (gap "reset"): offsets from now on are the new epoch's.
  newEra() {
    this.#era += 1;
    this.#byOffset.clear();
  }

  // A line from the room: { offset, ts, text } said by person, yours or someone else's; shared:
  // another person of the room goes by the same name (its tag is shown).
  message(frame, person, mine, shared) {
    const item = this.#line(person, frame.text, mine, shared);
    this.settle(item, frame);
    return item;
  }

  // A line of your own the server has not numbered yet: it waits at the bottom.
  pending(person, text, state) {
    const item = this.#line(person, text, true, false);
    item.querySelector("time").replaceWith(timeElement(Date.now())); // until the server's time comes
    this.mark(item, state);
    this.#keepBottom(() => this.list.append(item), true);
    return item;
  }

  // The line now has its offset (and, from a msg frame, its time): move it into place.
  settle(item, { offset, ts }) {
    if (ts !== undefined) item.querySelector("time").replaceWith(timeElement(ts));
    if (item.dataset.offset !== undefined) return;
    item.dataset.offset = String(offset);
    this.#byOffset.set(offset, item);
    this.#place(item, offset);
  }

  mark(item, state, detail = "") {
    item.dataset.state = state;
    const label = STATE_LABELS[state] + (detail ? `: ${detail}` : "");
    item.querySelector(".tick").textContent = label;
  }

  // A note from the page itself, standing just before offset `at` of the current era.
  note(text, at) {
    const item = document.createElement("li");
    item.className = "note";
    item.textContent = text;
    this.#place(item, at - 0.5);
    return item;
  }

  // Older lines go in above what the reader looks at without moving it.
  keepPosition(change) {
    const fromBottom = this.list.scrollHeight - this.list.scrollTop;
    change();
    this.list.scrollTop = this.list.scrollHeight - fromBottom;
  }

  // Who said a line: its name, its tag (shown when shared) and the guest mark. A line of yours
  // typed before the welcome learns your uid from its msg frame.
  identify(item, { uid, user, guest }, shared) {
    item.dataset.uid = uid ?? "";
    item.dataset.name = user;
    nameMarks(item.querySelector(".meta .who"), { uid, user, guest }, shared);
  }

  // A name became shared: every line of that name shows its tag from now on.
  showTags(name) {
    for (const item of this.list.querySelectorAll(".msg")) {
      const tag = item.querySelector(".meta .tag");
      if (item.dataset.name === name && tag.dataset.tag) tag.hidden = false;
    }
  }

  // A line a moderator removed: it keeps its place (its offset), its text and author go.
  removed(offset) {
    let item = this.#byOffset.get(offset);
    if (!item) {
      item = document.createElement("li");
      item.dataset.offset = String(offset);
      this.#byOffset.set(offset, item);
      this.#place(item, offset);
    }
    item.className = "msg removed";
    item.replaceChildren("message removed");
  }

  remove(item) {
    if (item.dataset.offset !== undefined) this.#byOffset.delete(Number(item.dataset.offset));
    item.remove();
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
  }

  #line(person, text, mine, shared) {
    const item = document.createElement("li");
    item.className = mine ? "msg mine" : "msg theirs";
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.append(span("who", ""), span("tag", ""), " ", document.createElement("time"));
    const body = span("text", text); // a message is text, whatever it looks like
    item.append(meta, body);
    if (mine) item.append(span("tick", ""));
    this.identify(item, person, shared);
    return item;
  }

  // Insert at (current era, key): after the last line with a smaller or equal position. Most
  // lines are the newest, so the search starts from the bottom.
  #place(item, key) {
    item.dataset.era = String(this.#era);
    item.dataset.key = String(key);
    let after = this.list.lastElementChild;
    while (after !== null && !this.#sortsBefore(after, this.#era, key)) after = after.previousElementSibling;
    const newest = after === null ? false : this.#isLastPlaced(after);
    const insert = () => (after === null ? this.list.prepend(item) : after.after(item));
    if (newest) this.#keepBottom(insert);
    else this.keepPosition(insert);
  }

  #sortsBefore(other, era, key) {
    if (other.dataset.key === undefined) return false; // pending: always last
    const otherEra = Number(other.dataset.era);
    return otherEra < era || (otherEra === era && Number(other.dataset.key) <= key);
  }

  #isLastPlaced(item) {
    const next = item.nextElementSibling;
    return next === null || next.dataset.key === undefined;
  }

  // The list follows the newest line unless the reader has scrolled up to read older ones;
  // force (your own line) scrolls anyway.
  #keepBottom(change, force = false) {
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    change();
    if (atBottom || force) this.scrollToEnd();
  }
}

// One room in the room list: a button that selects it, with who is online and what is unread.
export class RoomEntry {
  constructor(name, list, onSelect) {
    this.item = document.createElement("li");
    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.className = "room-link";
    this.online = span("online", "");
    this.unread = span("unread", "");
    this.button.append(span("room-name", `#${name}`), this.online, this.unread);
    this.button.addEventListener("click", onSelect);
    this.item.append(this.button);
    list.append(this.item);
  }

  show({ current, joined, online, unread }) {
    if (current) this.button.setAttribute("aria-current", "true");
    else this.button.removeAttribute("aria-current");
    this.button.dataset.joined = String(joined);
    this.online.textContent = joined ? `${online} online` : "";
    this.unread.textContent = String(unread);
    this.unread.title = `${unread} unread`;
    this.unread.hidden = unread === 0;
  }

  remove() {
    this.item.remove();
  }
}

// The members of a room (a Roster's members, { uid, user, guest } each), sorted by name and
// then tag, you marked by uid (style.css adds "(you)": another of your name is not you). Each
// item's text is the name alone; its tag and guest mark are drawn by style.css.
export function showMembers(list, roster, myUid) {
  const people = [...roster.members.values()];
  const sorted = people.sort((a, b) => a.user.localeCompare(b.user) || tagOf(a.uid).localeCompare(tagOf(b.uid)));
  list.replaceChildren(
    ...sorted.map((person) => {
      const item = document.createElement("li");
      item.dataset.uid = person.uid;
      nameMarks(item, person, roster.shared(person.user));
      if (person.uid === myUid) item.className = "you";
      return item;
    }),
  );
  return sorted.length;
}

/**
 * Fill `element` with a person's name, then after it (as siblings for a line's .who, as children
 * for a member's item) the tag, hidden unless `shared`, and the guest mark. The title says all
 * of it, tag included, for whoever points at a name to ask "which Alice?".
 */
export function nameMarks(element, { uid, user, guest }, shared) {
  const tag = uid ? tagOf(uid) : "";
  element.textContent = user;
  element.title = [user, tag && `tag ${tag}`, guest && "guest"].filter(Boolean).join(" · ");
  const holder = element.classList.contains("who") ? element.parentElement : element;
  let tagMark = holder.querySelector(":scope > .tag");
  if (tagMark === null) holder.append((tagMark = span("tag", "")));
  tagMark.dataset.tag = tag;
  tagMark.hidden = !shared || tag === "";
  let guestMark = holder.querySelector(":scope > .guest");
  if (guest && guestMark === null) tagMark.after((guestMark = span("guest", "")));
  if (!guest) guestMark?.remove();
}
