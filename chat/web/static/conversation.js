// One conversation (a room, someone you talk to privately, or the server's own notices) and its scrollback.
//
// Messages are kept in id order, each shown once: a message is inserted before the first shown message with a
// larger id, so a page of older history, a backlog after a reconnect and live messages all land in their place
// and a message seen twice (backlog and live, or two overlapping pages) is shown once. Lines without an id
// (joins, parts, notices) are live only and go at the end.

import { appendText, longTime, nickElement, shortTime } from "./text.js";

export const SERVER_KEY = "*";

export function roomKey(name) {
  return "#" + name.toLowerCase();
}

export function privateKey(nick) {
  return "@" + nick.toLowerCase();
}

export class Conversation {
  constructor(kind, name) {
    this.kind = kind; // "room" | "private" | "server"
    this.name = name;
    this.key = kind === "room" ? roomKey(name) : kind === "private" ? privateKey(name) : SERVER_KEY;
    this.topic = null;
    this.members = new Map(); // lower-case nick -> nick
    // Lower-case nicks of the room's ops (its owner included) and voiced members. Ops and voices belong to
    // accounts, and a registered nick is its account's: one who leaves and comes back is still an op, so these
    // outlive a part (a /mode answer lists the absent ones too; +o/-o and +v/-v keep them current).
    this.ops = new Set();
    this.voiced = new Set();
    this.owner = null; // lower-case nick of the room's owner, when a /mode answer said
    this.ids = []; // shown message ids, ascending
    this.nodes = new Map(); // id -> element
    this.unread = 0;
    this.mention = false;
    this.firstUnread = null; // id of the first message not yet seen
    this.beginning = false; // the first message of the room is shown: nothing older to fetch
    this.loading = false; // a page of older messages is on its way
    this.resumeAfter = null; // after a reconnect: the newest id seen before the connection was lost
    this.backlogMin = null; // the oldest id of the backlog being received
    this.joined = kind !== "room";
    this.log = document.createElement("div");
    this.log.className = "log";
    this.log.dataset.key = this.key;
    this.log.setAttribute("role", "log");
    this.top = document.createElement("div");
    this.top.className = "loading";
    this.log.append(this.top);
    this.marker = null;
  }

  get title() {
    return this.kind === "room" ? `#${this.name}` : this.name;
  }

  get oldestId() {
    return this.ids.length ? this.ids[0] : null;
  }

  get newestId() {
    return this.ids.length ? this.ids[this.ids.length - 1] : null;
  }

  has(id) {
    return this.nodes.has(id);
  }

  /** Show a chat message in its place by id; false if it is already shown. */
  addMessage(message, me) {
    if (this.nodes.has(message.id)) return false;
    const el = messageElement(message, me);
    // binary search: the first shown id larger than this one
    let lo = 0;
    let hi = this.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ids[mid] < message.id) lo = mid + 1;
      else hi = mid;
    }
    const atBottom = this.isAtBottom();
    const heightBefore = this.log.scrollHeight;
    const scrollBefore = this.log.scrollTop;
    if (lo < this.ids.length) {
      this.log.insertBefore(el, this.nodes.get(this.ids[lo]));
    } else {
      this.log.append(el);
    }
    this.ids.splice(lo, 0, message.id);
    this.nodes.set(message.id, el);
    if (lo < this.ids.length - 1 && !atBottom) {
      // inserted above what is being read (older history): keep the reader's place
      this.log.scrollTop = scrollBefore + (this.log.scrollHeight - heightBefore);
    } else if (atBottom) {
      this.scrollToBottom();
    }
    return true;
  }

  /** A line without an id: a join, a topic change, an error, a notice. */
  addLine(text, kind = "system", nick = null) {
    const el = document.createElement("div");
    el.className = `line ${kind}`;
    const time = document.createElement("time");
    const now = new Date().toISOString();
    time.dateTime = now;
    time.textContent = shortTime(now);
    const body = document.createElement("span");
    body.className = "body";
    if (nick) body.append(nickElement(nick), " ");
    appendText(body, text);
    el.append(time, body);
    const atBottom = this.isAtBottom();
    this.log.append(el);
    if (atBottom) this.scrollToBottom();
    return el;
  }

  /** The "new messages" marker, before the message with this id (one marker per conversation). */
  markNew(id) {
    this.clearMarker();
    const node = this.nodes.get(id);
    if (!node) return;
    this.marker = document.createElement("div");
    this.marker.className = "marker";
    this.marker.textContent = "New messages";
    this.log.insertBefore(this.marker, node);
  }

  clearMarker() {
    if (this.marker) this.marker.remove();
    this.marker = null;
  }

  setBeginning(beginning) {
    this.beginning = beginning;
    this.showTop();
  }

  setLoading(loading) {
    this.loading = loading;
    this.showTop();
  }

  showTop() {
    if (this.kind !== "room") {
      this.top.hidden = true;
      return;
    }
    this.top.hidden = false;
    this.top.className = this.beginning ? "beginning" : "loading";
    this.top.textContent = this.beginning
      ? `This is the beginning of #${this.name}.`
      : this.loading ? "Loading older messages…" : "";
  }

  isAtBottom() {
    const log = this.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  /** Does the scrollback not fill its box (so no scrolling can ask for more)? */
  get short() {
    return this.log.scrollHeight <= this.log.clientHeight + 2;
  }

  setMembers(nicks) {
    this.members = new Map(nicks.map((n) => [n.toLowerCase(), n]));
  }

  /** Who of `nicks` (those present: a joined or who event) are ops and voiced. */
  setRoles(nicks, ops, voiced) {
    const opSet = new Set(ops.map((n) => n.toLowerCase()));
    const voicedSet = new Set(voiced.map((n) => n.toLowerCase()));
    for (const key of nicks.map((n) => n.toLowerCase())) {
      if (opSet.has(key)) this.ops.add(key);
      else this.ops.delete(key);
      if (voicedSet.has(key)) this.voiced.add(key);
      else this.voiced.delete(key);
    }
  }

  /** Everyone's roles, absent or not (a room_modes event). */
  setAllRoles(owner, ops, voiced) {
    this.owner = owner ? owner.toLowerCase() : null;
    this.ops = new Set(ops.map((n) => n.toLowerCase()));
    this.voiced = new Set(voiced.map((n) => n.toLowerCase()));
  }

  /** A mode event: +o/-o, +v/-v change someone's role. */
  changeRole(mode, target) {
    const set = mode[1] === "o" ? this.ops : mode[1] === "v" ? this.voiced : null;
    if (!set || !target) return;
    if (mode[0] === "+") set.add(target.toLowerCase());
    else set.delete(target.toLowerCase());
  }

  /** "owner", "op", "voiced" or null: what the member list marks. */
  role(nick) {
    const key = nick.toLowerCase();
    if (this.ops.has(key)) return key === this.owner ? "owner" : "op";
    return this.voiced.has(key) ? "voiced" : null;
  }

  addMember(nick) {
    this.members.set(nick.toLowerCase(), nick);
  }

  removeMember(nick) {
    return this.members.delete(nick.toLowerCase());
  }

  hasMember(nick) {
    return this.members.has(nick.toLowerCase());
  }

  /** Ops first, then voiced members, then everyone else; by name within each. */
  sortedMembers() {
    const rank = (nick) => ({ owner: 0, op: 0, voiced: 1 })[this.role(nick)] ?? 2;
    return [...this.members.values()].sort((a, b) => rank(a) - rank(b) ||
      a.toLowerCase().localeCompare(b.toLowerCase()));
  }
}

function messageElement(m, me) {
  const el = document.createElement("div");
  el.className = "line msg";
  el.dataset.id = String(m.id);
  if (m.type === "action") el.classList.add("action");
  if (m.nick === me) el.classList.add("self");
  if (m.mention) el.classList.add("mention");
  const time = document.createElement("time");
  time.dateTime = m.time;
  time.title = longTime(m.time);
  time.textContent = shortTime(m.time);
  const body = document.createElement("span");
  body.className = "body";
  if (m.type === "action") {
    body.append("* ", nickElement(m.nick));
  } else {
    body.append(nickElement(m.nick));
  }
  const text = document.createElement("span");
  text.className = "text";
  appendText(text, m.text);
  body.append(text);
  el.append(time, body);
  return el;
}
