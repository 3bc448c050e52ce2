// The chat page: logs in, keeps one scrollback per conversation, and turns what the user types into command
// lines and what the server sends (JSON events, docs/PROTOCOL.md) into the page. Plain ES modules, no build step.
//
// Everything users typed reaches the page through textContent and text nodes (text.js): never as HTML.

import { Connection } from "./connection.js";
import { Conversation, SERVER_KEY, privateKey, roomKey } from "./conversation.js";
import { InputHistory, NickCompleter } from "./input.js";
import * as notifications from "./notify.js";
import { NICK_RE, ROOM_RE, byteLength, mentions, nickElement, splitBytes } from "./text.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50; // messages per page of older history
const CATCH_UP = 500; // messages per page when filling the gap a reconnect left (the server's most)
const SAVED = "chat.session"; // sessionStorage: a reload of the tab comes back as the same nick, in the same rooms
const NICK_ERRORS = new Set(["nick_taken", "invalid_nick"]);
// refusals of a login (/login NICK PASSWORD) before we are in: shown on the login form, in the server's words
const LOGIN_ERRORS = new Set(["bad_password", "no_such_account", "login_throttled", "already_logged_in",
  "server_busy", "nick_registered"]);
const RETRY_LOGIN = new Set(["already_logged_in", "server_busy"]); // after a reconnect: our old session, a storm
const SECRET_VERBS = new Set(["login", "identify", "register", "password"]); // never kept in the input history

class App {
  constructor() {
    this.me = null; // our nick, once the server has welcomed us
    this.wanted = null; // the nick we ask for
    // The account's password, to log in again after a reconnect: in this page's memory only, never in storage (a
    // reload of the tab asks for it again).
    this.password = null;
    this.newPassword = null; // from a /register or /password typed here: kept once the server says it took it
    this.askingPassword = false; // the server said the nick is registered: the login form asks for its password
    this.maxLine = 4096; // bytes in one command line (the server's hello says)
    this.serverName = "chat";
    this.convs = new Map(); // key -> Conversation
    this.active = null; // key of the conversation shown
    this.welcomed = false; // welcomed at least once: a lost connection is reconnected
    this.registered = false; // welcomed on the current connection
    this.pages = []; // history pages asked for, oldest first: {key, kind: "before" | "after", maxId}
    this.switchTo = null; // a room the user asked to join: shown once joined
    this.restoreActive = null;
    this.rejoining = []; // room names to join again, one after the other
    this.quietModes = new Set(); // rooms whose /mode the page asked for itself (to learn its ops): not shown
    this.history = new InputHistory();
    this.completer = new NickCompleter();
    this.connection = new Connection({
      onEvent: (event) => this.onEvent(event),
      onState: (state, detail) => this.onState(state, detail),
      onOpen: () => {},
      onClose: (info) => this.onClose(info),
    });
    this.bind();
    const saved = this.saved();
    if (saved?.nick) {
      this.restoreActive = saved.active ?? null;
      this.login(saved.nick);
    }
  }

  // ------------------------------------------------------------------------------------------- login

  bind() {
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const form = e.currentTarget;
      const nick = form.elements.nick.value.trim();
      const password = form.elements.password.value;
      if (!NICK_RE.test(nick)) {
        this.loginError("A nickname is 1-20 letters, digits, _ or -, and starts with a letter or _.");
        return;
      }
      notifications.ask().then(() => this.renderNotifyButton()); // asked now: browsers ask only on a click
      this.login(nick, password || null);
    });
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("input");
      if (this.submit(input.value)) input.value = "";
    });
    $("input").addEventListener("keydown", (e) => this.onInputKey(e));
    document.addEventListener("keydown", (e) => this.onKey(e));
    $("join-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const room = $("join-room").value.trim();
      if (!room) return;
      if (this.submit(`/join ${room}`)) $("join-room").value = "";
    });
    $("menu-button").addEventListener("click", () => this.toggle("show-sidebar"));
    $("members-button").addEventListener("click", () => {
      if (matchMedia("(max-width: 720px)").matches) this.toggle("show-members");
      else $("app").classList.toggle("no-members");
    });
    $("scrim").addEventListener("click", () => this.closePanels());
    $("jump").addEventListener("click", () => {
      this.activeConv()?.scrollToBottom();
      $("jump").hidden = true;
    });
    $("logout-button").addEventListener("click", () => this.logout());
    $("notify-button").addEventListener("click", () => notifications.ask().then(() => this.renderNotifyButton()));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.seen(this.activeConv());
    });
  }

  login(nick, password = null) {
    this.wanted = nick;
    this.password = password;
    this.askingPassword = false;
    $("login-button").disabled = true;
    $("login-error").hidden = true;
    $("login-password").value = "";
    if (this.connection.open && !this.registered) this.sendCredentials(); // the server waits for a password
    else this.connection.start();
  }

  /** The first thing a connection says: who we are. */
  sendCredentials() {
    this.connection.send(this.password ? `/login ${this.wanted} ${this.password}` : `/nick ${this.wanted}`);
  }

  loginError(text, code = "") {
    $("login-error").textContent = text;
    $("login-error").dataset.code = code;
    $("login-error").hidden = false;
    this.showLogin();
  }

  showLogin() {
    $("login-button").disabled = false;
    $("login").hidden = false;
    $("app").hidden = true;
    if ($("login-nick").value === "") $("login-nick").value = this.wanted ?? "";
  }

  /** The nick is registered and we gave no password: ask for it (the connection waits for it meanwhile). */
  askPassword(nick) {
    this.askingPassword = true;
    this.password = null;
    $("login-nick").value = nick;
    $("login-error").hidden = true;
    $("login-hint").textContent = `${nick} is a registered nickname: type its password, or choose another nickname.`;
    this.showLogin();
    $("login-password").focus();
  }

  logout() {
    this.connection.send("/quit");
    this.connection.stop();
    sessionStorage.removeItem(SAVED);
    location.reload();
  }

  saved() {
    try {
      return JSON.parse(sessionStorage.getItem(SAVED) ?? "null");
    } catch {
      return null;
    }
  }

  save() {
    const rooms = [...this.convs.values()].filter((c) => c.kind === "room").map((c) => c.name);
    sessionStorage.setItem(SAVED, JSON.stringify({ nick: this.me, rooms, active: this.active }));
  }

  // ------------------------------------------------------------------------------------ connection

  onState(state, seconds) {
    const status = $("status");
    const text = {
      connecting: "Connecting…",
      waiting: `Reconnecting in ${seconds} s`,
      stopped: "Disconnected",
      online: "Connected",
    }[state] ?? state;
    status.textContent = text;
    status.dataset.state = state === "online" ? "online" : state === "connecting" ? "connecting" : "offline";
    const banner = $("offline");
    banner.hidden = state === "online" || !this.welcomed;
    banner.textContent = state === "waiting"
      ? `Connection lost. Reconnecting in ${seconds} s…`
      : "Connection lost. Reconnecting…";
  }

  onClose(info) {
    const wasRegistered = this.registered;
    this.registered = false;
    if (this.askingPassword) { // the prompt stays; its answer opens a new connection
      this.connection.stop();
      return;
    }
    if (!this.welcomed) {
      this.connection.stop();
      this.loginError(info.reason ? `The server closed the connection: ${info.reason}` :
        "Could not reach the chat server. Is it running?");
      return;
    }
    for (const conv of this.convs.values()) {
      if (conv.kind === "room") {
        if (conv.resumeAfter === null) conv.resumeAfter = conv.newestId;
        conv.joined = false;
        conv.setLoading(false);
      }
    }
    this.pages = [];
    if (wasRegistered) this.activeConv()?.addLine("Disconnected from the server.", "system");
  }

  onEvent(e) {
    switch (e.type) {
      case "hello":
        this.maxLine = e.max_line;
        this.serverName = e.server;
        if (!this.askingPassword) this.sendCredentials();
        break;
      case "password_wanted":
        this.askPassword(e.nick);
        break;
      case "account":
        this.account(e);
        break;
      case "welcome":
        this.welcome(e);
        break;
      case "message":
      case "action":
        this.roomMessage(e);
        break;
      case "private":
        this.privateMessage(e);
        break;
      case "history_end":
        this.historyEnd(e);
        break;
      case "joined":
        this.joined(e);
        break;
      case "join": {
        const conv = this.convs.get(roomKey(e.room));
        if (!conv) break;
        conv.addMember(e.nick);
        conv.addLine("joined", "system join", e.nick);
        this.renderMembers();
        break;
      }
      case "part":
        this.part(e);
        break;
      case "quit":
        for (const conv of this.convs.values()) {
          if (conv.removeMember(e.nick) || conv.key === privateKey(e.nick)) {
            conv.addLine(`quit${e.reason ? ` (${e.reason})` : ""}`, "system quit", e.nick);
          }
        }
        this.renderMembers();
        break;
      case "nick":
        this.nickChange(e);
        break;
      case "topic":
        this.topic(e);
        break;
      case "who": {
        const conv = this.convs.get(roomKey(e.room));
        if (conv) {
          conv.setMembers(e.members);
          conv.setRoles(e.members, e.ops ?? [], e.voiced ?? []);
        }
        const shown = e.members.map((n) => (e.ops?.includes(n) ? "@" : e.voiced?.includes(n) ? "+" : "") + n);
        this.info(`#${e.room}: ${shown.length ? shown.join(", ") : "nobody is here"}`);
        this.renderMembers();
        break;
      }
      case "room_modes":
        this.roomModes(e);
        break;
      case "mode":
        this.mode(e);
        break;
      case "kick":
        this.kick(e);
        break;
      case "rooms":
        this.info(e.rooms.length ? `Rooms (${e.total}):` : "No rooms have anyone in them.");
        for (const r of e.rooms) this.info(`  #${r.room} (${r.members})${r.topic ? `: ${r.topic}` : ""}`);
        break;
      case "help":
        for (const line of e.lines) this.info(line);
        break;
      case "notice":
        if (this.registered) this.info(e.text);
        break;
      case "operator":
        this.info(`You are a server operator now (the powers of the admin account ${e.account}).`);
        break;
      case "user_modes":
        this.info(e.change ? `Your user modes changed: ${e.modes}` : `Your user modes: ${e.modes}`);
        break;
      case "wallops":
        this.info(`WALLOPS from ${e.nick}: ${e.text}`);
        break;
      case "time":
        this.info(`The server's time: ${e.time}`);
        break;
      case "error":
        this.error(e);
        break;
      case "bye":
        if (e.code) this.activeConv()?.addLine(`The server closed the connection: ${e.reason}`, "system");
        break;
      default: // current, format, pong: nothing to show
    }
  }

  welcome(e) {
    const again = this.welcomed;
    this.me = e.nick;
    this.wanted = e.nick;
    this.maxLine = e.max_line;
    this.welcomed = true;
    this.registered = true;
    this.connection.setState("online");
    $("login").hidden = true;
    $("app").hidden = false;
    $("me-nick").replaceChildren(nickElement(e.nick));
    this.renderNotifyButton();
    // rooms to join again (after a reconnect, or a reload of the tab): one at a time, each once the last one
    // is joined, so that many rooms never trip the server's flood control
    this.rejoining = again
      ? [...this.convs.values()].filter((c) => c.kind === "room").map((c) => c.name)
      : [...(this.saved()?.rooms ?? [])];
    this.rejoinNext();
    if (again) this.activeConv()?.addLine("Reconnected.", "system");
    this.save();
    $("input").focus();
  }

  /** Our account changed: keep the password that logs in again after a reconnect (or forget it). */
  account(e) {
    if (e.change === "logged_out") this.password = null;
    else if (this.newPassword !== null) this.password = this.newPassword;
    this.newPassword = null;
    if (e.change === "logged_in") this.wanted = e.account;
    if (!this.registered) return; // logging in: the welcome that follows says enough
    const said = {
      registered: `${e.account} is registered to you, and you are logged in.`,
      logged_in: `You are logged in as ${e.account}.`,
      logged_out: `You are logged out of ${e.account}; you are now ${e.nick}.`,
      password_changed: `The password of ${e.account} is changed.`,
    }[e.change];
    if (said) this.info(said);
  }

  rejoinNext() {
    const name = this.rejoining.shift();
    if (name !== undefined) this.connection.send(`/join #${name}`);
  }

  // -------------------------------------------------------------------------------------- messages

  roomMessage(m) {
    const conv = this.room(m.room);
    m.mention = m.nick !== this.me && mentions(m.text, this.me);
    const missed = m.history && conv.resumeAfter !== null && m.id > conv.resumeAfter;
    if (m.history && (conv.backlogMin === null || m.id < conv.backlogMin)) conv.backlogMin = m.id;
    const page = this.pages.find((p) => p.key === conv.key);
    if (page && m.history && m.id > page.maxId) page.maxId = m.id;
    if (!conv.addMessage(m, this.me)) return;
    if (missed) {
      conv.firstMissed = Math.min(conv.firstMissed ?? m.id, m.id); // a gap's page comes after the backlog
      this.arrived(conv, m, false);
    } else if (!m.history) {
      this.arrived(conv, m, m.mention);
    }
  }

  privateMessage(m) {
    const other = m.nick === this.me ? m.to : m.nick;
    const opened = !this.convs.has(privateKey(other));
    const conv = this.privateConv(other);
    m.mention = false;
    if (conv.addMessage(m, this.me)) this.arrived(conv, m, m.nick !== this.me);
    if (opened && m.nick === this.me) this.activate(conv); // /msg typed elsewhere: the conversation it began
  }

  /** A message the user has not seen yet: counted unread unless they are looking; a mention notifies. */
  arrived(conv, m, notify) {
    if (m.nick === this.me) return;
    const watching = conv.key === this.active && !document.hidden;
    if (!watching) {
      conv.unread += 1;
      if (m.mention || conv.kind === "private") conv.mention = true;
      conv.firstUnread = Math.min(conv.firstUnread ?? m.id, m.id);
      this.renderSidebar();
    } else if (!conv.isAtBottom()) {
      $("jump").hidden = false;
    }
    if (notify && (document.hidden || conv.key !== this.active)) {
      const where = conv.kind === "room" ? `${m.nick} in #${conv.name}` : m.nick;
      notifications.notify(where, m.text, conv.key, () => this.activate(conv));
    }
  }

  historyEnd(e) {
    const conv = this.convs.get(roomKey(e.room));
    if (!conv) return;
    if (e.reason === "backlog") {
      if (!e.more) conv.setBeginning(true);
      if (conv.resumeAfter !== null) {
        const gap = e.more && (conv.backlogMin === null || conv.backlogMin > conv.resumeAfter);
        if (gap) this.askAfter(conv, conv.resumeAfter);
        else this.caughtUp(conv);
      }
      conv.backlogMin = null;
      this.fill(conv);
      return;
    }
    const index = this.pages.findIndex((p) => p.key === conv.key);
    const page = index >= 0 ? this.pages.splice(index, 1)[0] : { kind: "before", maxId: 0 };
    if (page.kind === "after") {
      if (e.more && page.maxId > 0) this.askAfter(conv, page.maxId);
      else this.caughtUp(conv);
      return;
    }
    conv.setLoading(false);
    if (!e.more) conv.setBeginning(true);
    this.fill(conv);
  }

  /** Older messages, for a scrollback scrolled to its top (or one too short to scroll). */
  askOlder(conv) {
    if (conv.kind !== "room" || conv.loading || conv.beginning || !conv.joined || !this.registered) return;
    const before = conv.oldestId;
    conv.setLoading(true);
    this.pages.push({ key: conv.key, kind: "before", maxId: 0 });
    this.connection.send(`/history #${conv.name} ${PAGE}${before ? ` before ${before}` : ""}`);
  }

  /** After a reconnect: what was said in the room after `id` and before the backlog. */
  askAfter(conv, id) {
    this.pages.push({ key: conv.key, kind: "after", maxId: 0 });
    this.connection.send(`/history #${conv.name} ${CATCH_UP} after ${id}`);
  }

  caughtUp(conv) {
    const first = conv.firstMissed;
    conv.resumeAfter = null;
    conv.firstMissed = null;
    if (first != null && conv.key === this.active) conv.markNew(first);
  }

  fill(conv) {
    if (conv.key === this.active && conv.short) this.askOlder(conv);
  }

  // ------------------------------------------------------------------------------------- rooms, people

  room(name) {
    const key = roomKey(name);
    let conv = this.convs.get(key);
    if (!conv) {
      conv = this.add(new Conversation("room", name));
      conv.log.addEventListener("scroll", () => {
        if (conv.log.scrollTop < 120) this.askOlder(conv);
        if (conv.isAtBottom() && conv.key === this.active) $("jump").hidden = true;
      });
    }
    return conv;
  }

  privateConv(nick) {
    return this.convs.get(privateKey(nick)) ?? this.add(new Conversation("private", nick));
  }

  add(conv) {
    this.convs.set(conv.key, conv);
    $("logs").append(conv.log);
    conv.log.hidden = true;
    conv.showTop();
    this.renderSidebar();
    return conv;
  }

  remove(conv) {
    this.convs.delete(conv.key);
    conv.log.remove();
    if (this.active === conv.key) {
      const next = this.ordered()[0];
      this.active = null;
      if (next) this.activate(next);
      else this.renderHeader();
    }
    this.renderSidebar();
    this.save();
  }

  joined(e) {
    const existed = this.convs.has(roomKey(e.room));
    const conv = this.room(e.room);
    conv.name = e.room;
    conv.joined = true;
    conv.setMembers(e.members);
    conv.setRoles(e.members, e.ops ?? [], e.voiced ?? []);
    conv.topic = e.topic;
    conv.backlogMin = null;
    const key = conv.key;
    // shown: the first room (the lobby), one the user asked to join, the one shown before a reload of the tab;
    // not the rooms joined again after a reconnect, nor the others a reload brings back
    if (!this.active || this.switchTo === key || (!existed && this.restoreActive === key)) this.activate(conv);
    if (this.switchTo === key) this.switchTo = null;
    if (this.restoreActive === key) this.restoreActive = null;
    // the ops who are not here now (they are ops again when they come back): the room's /mode lists them
    this.quietModes.add(key);
    this.connection.send(`/mode #${e.room}`);
    if (this.rejoining.length) this.rejoinNext();
    this.renderHeader();
    this.renderMembers();
    this.save();
  }

  roomModes(e) {
    const key = roomKey(e.room);
    const conv = this.convs.get(key);
    if (conv?.joined) conv.setAllRoles(e.owner, e.ops, e.voiced);
    this.renderMembers();
    if (this.quietModes.delete(key)) return; // asked by the page itself
    const parts = [`#${e.room}: ${e.modes ? `modes ${e.modes}` : "no modes set"}`];
    if (e.key) parts.push(`key ${e.key}`);
    if (e.limit != null) parts.push(`at most ${e.limit} members`);
    parts.push(e.owner ? `owner ${e.owner}` : "no owner");
    if (e.ops.length) parts.push(`ops: ${e.ops.join(", ")}`);
    if (e.voiced.length) parts.push(`voiced: ${e.voiced.join(", ")}`);
    if (e.bans?.length) parts.push(`banned: ${e.bans.join(", ")}`);
    if (e.invited?.length) parts.push(`invited: ${e.invited.join(", ")}`);
    if (e.invite_exceptions?.length) parts.push(`invite exceptions: ${e.invite_exceptions.join(", ")}`);
    if (e.ban_exceptions?.length) parts.push(`ban exceptions: ${e.ban_exceptions.join(", ")}`);
    (conv ?? this.activeConv() ?? this.serverConv()).addLine(parts.join("; "), "system");
  }

  mode(e) {
    const conv = this.convs.get(roomKey(e.room));
    if (!conv) return;
    conv.changeRole(e.mode, e.target);
    const room = `#${e.room}`;
    const said = {
      "+i": `made ${room} invite-only`, "-i": `made ${room} open to everyone`,
      "+k": `set a key on ${room}`, "-k": `removed the key of ${room}`,
      "+l": `limited ${room} to ${e.target} members`, "-l": `removed the member limit of ${room}`,
      "+n": `let only members send to ${room}`, "-n": `let anyone send to ${room}, members or not`,
      "+s": `made ${room} secret: outsiders do not see it`, "-s": `made ${room} no longer secret`,
      "+t": `let only ops set the topic of ${room}`, "-t": `let everyone set the topic of ${room}`,
      "+m": `made ${room} moderated: only ops and voiced members may speak`, "-m": `made ${room} unmoderated`,
      "+o": `made ${e.target} an op`, "-o": `took ops from ${e.target}`,
      "+v": `gave ${e.target} a voice`, "-v": `took the voice of ${e.target}`,
      "+b": `banned ${e.target}`, "-b": `lifted the ban on ${e.target}`,
    }[e.mode] ?? `set ${e.mode}${e.target ? ` ${e.target}` : ""}`;
    conv.addLine(said, "system mode", e.nick);
    this.renderMembers();
  }

  kick(e) {
    const conv = this.convs.get(roomKey(e.room));
    if (!conv) return;
    const why = e.reason ? ` (${e.reason})` : "";
    if (e.nick === this.me) {
      this.remove(conv);
      this.info(`${e.by} put you out of #${e.room}${why}.`);
      return;
    }
    conv.removeMember(e.nick);
    conv.addLine(`was put out by ${e.by}${why}`, "system part", e.nick);
    this.renderMembers();
  }

  part(e) {
    const conv = this.convs.get(roomKey(e.room));
    if (!conv) return;
    if (e.nick === this.me) {
      this.remove(conv);
      return;
    }
    conv.removeMember(e.nick);
    conv.addLine(`left${e.reason ? ` (${e.reason})` : ""}`, "system part", e.nick);
    this.renderMembers();
  }

  nickChange(e) {
    if (e.old === this.me) {
      this.me = e.new;
      this.wanted = e.new;
      $("me-nick").replaceChildren(nickElement(e.new));
      this.save();
    }
    for (const conv of this.convs.values()) {
      if (conv.removeMember(e.old)) {
        conv.addMember(e.new);
        conv.addLine(`is now known as ${e.new}`, "system", e.old);
      }
    }
    const conv = this.convs.get(privateKey(e.old));
    if (conv && !this.convs.has(privateKey(e.new))) {
      this.convs.delete(conv.key);
      conv.name = e.new;
      conv.key = privateKey(e.new);
      conv.log.dataset.key = conv.key;
      this.convs.set(conv.key, conv);
      if (this.active === privateKey(e.old)) this.active = conv.key;
      conv.addLine(`is now known as ${e.new}`, "system", e.old);
    }
    this.renderSidebar();
    this.renderHeader();
    this.renderMembers();
  }

  topic(e) {
    const conv = this.convs.get(roomKey(e.room));
    if (conv) conv.topic = e.topic;
    const target = conv ?? this.activeConv();
    if (e.change) {
      target?.addLine(e.topic ? `set the topic: ${e.topic}` : "cleared the topic", "system topic", e.nick);
    } else {
      target?.addLine(e.topic ? `Topic of #${e.room}: ${e.topic}` : `#${e.room} has no topic.`, "system");
    }
    this.renderHeader();
  }

  error(e) {
    if (!this.registered && LOGIN_ERRORS.has(e.code)) {
      if (this.welcomed && RETRY_LOGIN.has(e.code)) {
        this.connection.retry(); // our old session still holds the account (or the server is busy): again soon
        return;
      }
      this.password = null;
      this.connection.stop();
      this.loginError(e.message, e.code);
      $("login-password").focus();
      return;
    }
    if (!this.registered && NICK_ERRORS.has(e.code)) {
      if (!this.welcomed) {
        this.connection.stop();
        this.loginError(e.message, e.code);
      } else if (e.code === "nick_taken") {
        // the old connection still holds the nick (the server has not noticed it is gone): another for now
        this.wanted = (this.wanted.length < 20 ? this.wanted : this.wanted.slice(0, 19)) + "_";
        this.connection.send(`/nick ${this.wanted}`);
      }
      return;
    }
    if (e.code === "not_registered") return;
    if (e.command === "history") {
      const index = this.pages.findIndex((p) => p.key === roomKey(e.subject ?? ""));
      const page = index >= 0 ? this.pages.splice(index, 1)[0] : this.pages.shift();
      const conv = page && this.convs.get(page.key);
      conv?.setLoading(false);
    }
    if (SECRET_VERBS.has(e.command ?? "")) this.newPassword = null;
    if (e.command === "mode" && this.quietModes.delete(roomKey(e.subject ?? ""))) return; // asked by the page
    if (e.command === "join") {
      if (this.switchTo === roomKey(e.subject ?? "")) this.switchTo = null;
      else this.rejoinNext(); // a room that could not be joined again: on to the next
    }
    (this.activeConv() ?? this.serverConv()).addLine(e.message, "system error");
  }

  info(text) {
    (this.activeConv() ?? this.serverConv()).addLine(text, "system");
  }

  serverConv() {
    return this.convs.get(SERVER_KEY) ?? this.activate(this.add(new Conversation("server", this.serverName)));
  }

  // ------------------------------------------------------------------------------------------ typing

  /** What the user typed in the message box: a line for the conversation shown, or a command. Returns false
   * when it could not be sent (not connected), so the text stays in the box. */
  submit(text) {
    if (!text.trim()) return false;
    const conv = this.activeConv();
    let ok;
    const isCommand = text.startsWith("/") && !text.startsWith("//");
    if (isCommand) ok = this.command(text, conv);
    else ok = this.say(conv, text.startsWith("//") ? text.slice(1) : text);
    if (ok && !(isCommand && SECRET_VERBS.has(text.slice(1).split(" ")[0].toLowerCase()))) this.history.add(text);
    return ok;
  }

  say(conv, text) {
    if (!conv || conv.kind === "server") {
      this.info("Join a room first: /join ROOM");
      return false;
    }
    const prefix = conv.kind === "room" ? `/msg #${conv.name} ` : `/msg ${conv.name} `;
    const pieces = splitBytes(text, this.maxLine - byteLength(prefix));
    return pieces.every((piece) => this.send(prefix + piece));
  }

  command(text, conv) {
    const space = text.indexOf(" ");
    const verb = (space < 0 ? text.slice(1) : text.slice(1, space)).toLowerCase();
    const rest = space < 0 ? "" : text.slice(space + 1).trim();
    const raw = space < 0 ? "" : text.slice(space + 1); // a password keeps its spaces
    const inRoom = conv?.kind === "room";
    switch (verb) {
      case "me":
        if (!inRoom) {
          this.info("/me works in rooms.");
          return false;
        }
        return this.send(`/me #${conv.name} ${rest}`);
      case "topic":
        return this.send(inRoom && !rest.startsWith("#") ? `/topic #${conv.name}${rest ? ` ${rest}` : ""}` : text);
      case "who":
      case "names":
        return this.send(inRoom && !rest ? `/who #${conv.name}` : text);
      case "mode": // /mode, /mode +m, /mode +o bob: the room shown
        return this.send(inRoom && (!rest || /^[+-]/.test(rest)) ? `/mode #${conv.name}${rest ? ` ${rest}` : ""}`
          : text);
      case "leave":
      case "part":
      case "close":
        if (conv?.kind !== "room" && !rest) {
          if (conv) this.remove(conv);
          return true;
        }
        return this.send(rest ? `/leave ${rest}` : `/leave #${conv.name}`);
      case "query":
      case "msg":
      case "tell": {
        const [target, ...words] = rest.split(" ");
        if (target && !target.startsWith("#") && NICK_RE.test(target) && !words.join(" ").trim()) {
          this.activate(this.privateConv(target)); // a conversation to write in, nothing sent yet
          return true;
        }
        return this.send(text);
      }
      case "join":
      case "j": {
        const name = rest.split(" ")[0].replace(/^#/, "");
        if (!ROOM_RE.test(name)) return this.send(text); // the server explains what a room name is
        const open = this.convs.get(roomKey(name));
        if (open?.joined) {
          this.activate(open);
          return true;
        }
        this.switchTo = roomKey(name);
        return this.send(`/join #${name}`);
      }
      case "quit":
      case "exit":
      case "bye":
      case "disconnect":
        this.logout();
        return true;
      case "format":
        this.info("The page always speaks JSON to the server.");
        return false;
      case "register":
      case "password":
        this.newPassword = raw; // kept to log in again after a reconnect, once the server has taken it
        return this.send(text);
      case "login":
      case "identify":
        this.newPassword = raw.slice(raw.indexOf(" ") + 1);
        return this.send(text);
      default:
        return this.send(text);
    }
  }

  send(line) {
    if (byteLength(line) > this.maxLine) {
      this.info(`That line is longer than the server takes (${this.maxLine} bytes).`);
      return false;
    }
    if (!this.registered || !this.connection.send(line)) {
      this.info("Not connected: that was not sent. It is still in the box; send it again once reconnected.");
      return false;
    }
    return true;
  }

  onInputKey(e) {
    const input = e.currentTarget;
    if (e.key === "Tab" && !e.altKey && !e.ctrlKey && !e.metaKey) {
      const conv = this.activeConv();
      const nicks = conv ? [...conv.members.values(), ...(conv.kind === "private" ? [conv.name] : [])] : [];
      if (input.value) e.preventDefault();
      this.completer.complete(input, nicks.filter((n) => n !== this.me));
      return;
    }
    this.completer.reset();
    if (e.key === "ArrowUp" && !e.shiftKey) {
      const line = this.history.back(input.value);
      if (line !== null) {
        e.preventDefault();
        input.value = line;
        input.setSelectionRange(line.length, line.length);
      }
    } else if (e.key === "ArrowDown" && !e.shiftKey) {
      const line = this.history.forward();
      if (line !== null) {
        e.preventDefault();
        input.value = line;
      }
    }
  }

  onKey(e) {
    if (e.altKey && !e.ctrlKey && !e.metaKey && /^Digit[1-9]$/.test(e.code)) {
      const conv = this.ordered()[Number(e.code.slice(5)) - 1];
      if (conv) {
        e.preventDefault();
        this.activate(conv);
      }
    } else if (e.key === "Escape") {
      this.closePanels();
    }
  }

  // -------------------------------------------------------------------------------------------- view

  activeConv() {
    return this.active ? this.convs.get(this.active) ?? null : null;
  }

  ordered() {
    const all = [...this.convs.values()];
    const rank = { room: 0, private: 1, server: 2 };
    return all.sort((a, b) => rank[a.kind] - rank[b.kind]); // stable: in the order they were opened
  }

  activate(conv) {
    const previous = this.activeConv();
    if (previous && previous !== conv) {
      previous.log.hidden = true;
      if (!previous.unread) previous.clearMarker();
    }
    this.active = conv.key;
    conv.log.hidden = false;
    this.seen(conv);
    this.renderSidebar();
    this.renderHeader();
    this.renderMembers();
    this.closePanels();
    $("jump").hidden = true;
    if (this.me) this.save();
    this.fill(conv);
    return conv;
  }

  /** The user is looking at `conv`: what was unread is read, and the marker shows where it began. */
  seen(conv) {
    if (!conv || document.hidden) return;
    if (conv.unread) {
      conv.markNew(conv.firstUnread);
      conv.nodes.get(conv.firstUnread)?.scrollIntoView({ block: "center" });
    }
    conv.unread = 0;
    conv.mention = false;
    conv.firstUnread = null;
    this.renderSidebar();
  }

  renderSidebar() {
    const list = $("conversations");
    const items = [];
    let section = null;
    let total = 0;
    let mention = false;
    this.ordered().forEach((conv, i) => {
      const label = conv.kind === "room" ? "Rooms" : conv.kind === "private" ? "Private" : "Server";
      if (label !== section) {
        section = label;
        const heading = document.createElement("li");
        heading.className = "section-label";
        heading.textContent = label;
        items.push(heading);
      }
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.key = conv.key;
      if (conv.key === this.active) button.setAttribute("aria-current", "true");
      if (conv.unread) li.classList.add("unread");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = conv.title;
      button.append(name);
      if (conv.unread) {
        const badge = document.createElement("span");
        badge.className = conv.mention ? "badge mention" : "badge";
        badge.textContent = String(conv.unread);
        button.append(badge);
      }
      if (i < 9) {
        const key = document.createElement("span");
        key.className = "key";
        key.textContent = `Alt+${i + 1}`;
        button.append(key);
      }
      button.addEventListener("click", () => this.activate(conv));
      li.append(button);
      items.push(li);
      total += conv.unread;
      mention ||= conv.mention;
    });
    list.replaceChildren(...items);
    $("menu-button").classList.toggle("unread", total > 0); // on a phone the list is hidden: a dot says so
    $("menu-button").classList.toggle("mention", mention);
    document.title = total ? `(${total}${mention ? "!" : ""}) ${this.serverName}` : this.serverName;
  }

  renderHeader() {
    const conv = this.activeConv();
    $("conv-name").textContent = conv ? conv.title : "";
    const topic = conv?.kind === "room" ? conv.topic ?? "" : conv?.kind === "private" ? "Private conversation" : "";
    $("conv-topic").textContent = topic;
    $("conv-topic").title = topic;
  }

  renderMembers() {
    const conv = this.activeConv();
    const room = conv?.kind === "room";
    $("app").classList.toggle("no-members", !room && !matchMedia("(max-width: 720px)").matches);
    $("members-button").hidden = !room;
    const nicks = room ? conv.sortedMembers() : [];
    $("members-title").textContent = room ? `Members (${nicks.length})` : "Members";
    $("member-list").replaceChildren(...nicks.map((nick) => {
      const li = document.createElement("li");
      const role = conv.role(nick);
      const mark = document.createElement("span");
      mark.className = `role${role ? ` ${role}` : ""}`;
      mark.textContent = role === "voiced" ? "+" : role ? "@" : "";
      if (role) {
        mark.title = { owner: "the room's owner (an op)", op: "an op of the room", voiced: "has a voice" }[role];
        li.dataset.role = role;
      }
      const button = nickElement(nick, "button");
      button.type = "button";
      if (nick !== this.me) button.addEventListener("click", () => this.activate(this.privateConv(nick)));
      li.append(mark, button);
      return li;
    }));
  }

  renderNotifyButton() {
    $("notify-button").hidden = notifications.permission() !== "default";
  }

  toggle(panel) {
    const app = $("app");
    const open = !app.classList.contains(panel);
    this.closePanels();
    app.classList.toggle(panel, open);
    $("scrim").hidden = !open;
    $(panel === "show-sidebar" ? "menu-button" : "members-button").setAttribute("aria-expanded", String(open));
  }

  closePanels() {
    $("app").classList.remove("show-sidebar", "show-members");
    $("scrim").hidden = true;
    $("menu-button").setAttribute("aria-expanded", "false");
    $("members-button").setAttribute("aria-expanded", "false");
  }
}

window.chat = new App(); // for the curious, in the browser's console (and for the tests)
