// The WebSocket to the server, kept up: it reconnects by itself after a drop (with a growing delay), checks that
// the server still answers (a /ping now and then), and reports its state for the page to show.
//
// The protocol (docs/WEB.md): each frame from the server is one JSON event; each frame to it is one command line.

const RETRY_SECONDS = [1, 2, 3, 5, 10, 20, 30];
const PING_EVERY = 30_000; // ms of quiet before asking the server whether it is there
const PONG_WITHIN = 15_000; // ms it has to answer before the connection is taken for dead

export class Connection {
  /**
   * @param {object} handlers onEvent(event), onState(state, detail), onOpen(), onClose(info)
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.socket = null;
    this.state = "idle"; // idle | connecting | online | waiting (to retry) | stopped
    this.failures = 0;
    this.retryTimer = null;
    this.countdown = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.pingCount = 0;
    window.addEventListener("online", () => { if (this.state === "waiting") this.connectNow(); });
  }

  url() {
    const url = new URL("ws", document.baseURI); // beside the page: works behind a proxy under a sub-path
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  start() {
    this.stopped = false;
    this.connectNow();
  }

  /** Close for good (the user left): no reconnect. */
  stop() {
    this.stopped = true;
    this.clearTimers();
    if (this.socket) this.socket.close(1000, "left");
    this.socket = null;
    this.setState("stopped");
  }

  connectNow() {
    this.clearTimers();
    if (this.socket) return;
    this.setState("connecting");
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      this.failures = 0;
      this.armPing();
      this.handlers.onOpen();
    };
    socket.onmessage = (message) => {
      this.armPing();
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.type === "pong" && String(event.token).startsWith("live-")) return;
      this.handlers.onEvent(event);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.clearTimers();
      this.handlers.onClose({ code: close.code, reason: close.reason, clean: close.wasClean });
      if (!this.stopped) this.retryLater();
    };
  }

  /** Is the socket open (welcomed or not)? */
  get open() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** Close this connection and open another after the usual delay (the server may let us in then). */
  retry() {
    if (this.socket) this.socket.close(1000, "trying again");
  }

  send(line) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(line);
      return true;
    }
    return false;
  }

  /** The server said it is closing this session and why: reconnecting may or may not help. */
  retryLater() {
    const seconds = RETRY_SECONDS[Math.min(this.failures, RETRY_SECONDS.length - 1)];
    this.failures += 1;
    let left = seconds;
    this.setState("waiting", left);
    this.countdown = setInterval(() => {
      left -= 1;
      if (left > 0) this.setState("waiting", left);
    }, 1000);
    this.retryTimer = setTimeout(() => this.connectNow(), seconds * 1000);
  }

  armPing() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    this.pingTimer = setTimeout(() => {
      this.pingCount += 1;
      this.send(`/ping live-${this.pingCount}`);
      this.pongTimer = setTimeout(() => this.socket && this.socket.close(4000, "no answer"), PONG_WITHIN);
    }, PING_EVERY);
  }

  clearTimers() {
    clearTimeout(this.retryTimer);
    clearInterval(this.countdown);
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  setState(state, detail) {
    this.state = state;
    this.handlers.onState(state, detail);
  }
}
