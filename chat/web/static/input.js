// The message box's keys: Up and Down walk through what you sent (to edit and send again), Tab completes a nick.

const HISTORY_MAX = 200;

export class InputHistory {
  constructor() {
    this.lines = [];
    this.position = 0; // == lines.length: not browsing
    this.draft = "";
  }

  add(line) {
    if (line && this.lines[this.lines.length - 1] !== line) this.lines.push(line);
    if (this.lines.length > HISTORY_MAX) this.lines.shift();
    this.position = this.lines.length;
    this.draft = "";
  }

  /** The previous line (Up), or null when there is none. */
  back(current) {
    if (this.position === 0) return null;
    if (this.position === this.lines.length) this.draft = current;
    this.position -= 1;
    return this.lines[this.position];
  }

  /** The next line (Down), the draft after the last, or null when not browsing. */
  forward() {
    if (this.position >= this.lines.length) return null;
    this.position += 1;
    return this.position === this.lines.length ? this.draft : this.lines[this.position];
  }
}

/** Tab completion of nicks: each Tab moves to the next nick that starts like the word before the cursor. */
export class NickCompleter {
  constructor() {
    this.reset();
  }

  reset() {
    this.state = null;
  }

  /** `input`: the text box; `nicks`: candidates. Returns true when it changed the text. */
  complete(input, nicks) {
    if (!this.state) {
      const caret = input.selectionStart ?? input.value.length;
      const before = input.value.slice(0, caret);
      const start = before.search(/\S*$/);
      const prefix = before.slice(start).toLowerCase();
      if (!prefix) return false;
      const matches = nicks.filter((n) => n.toLowerCase().startsWith(prefix)).sort((a, b) => a.localeCompare(b));
      if (!matches.length) return false;
      this.state = { start, after: input.value.slice(caret), matches, index: -1 };
    }
    const s = this.state;
    s.index = (s.index + 1) % s.matches.length;
    const suffix = s.start === 0 ? ": " : " ";
    const head = input.value.slice(0, s.start) + s.matches[s.index] + suffix;
    input.value = head + s.after.replace(/^ /, "");
    input.setSelectionRange(head.length, head.length);
    return true;
  }
}
