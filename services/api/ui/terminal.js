// A minimal terminal for the browser console: the text a shell prints, as lines. It handles
// printable text, CR, LF, backspace and tabs, and drops ANSI escape sequences (colours, cursor
// moves, titles) — enough for a shell prompt and line-oriented commands, not for full-screen
// programs (no cursor addressing: use `ferry console` for those).

/** lines kept (older ones scroll away) */
export const SCROLLBACK = 2000;

/**
 * Escape sequences: CSI (ESC [ … final byte), OSC (ESC ] … BEL or ST), and two-byte ones
 * (ESC + one byte, e.g. ESC = or ESC 7). DCS, SOS, PM and APC strings end at ST like OSC.
 */
// eslint-disable-next-line no-control-regex -- matching control bytes is the point
const ESCAPE = /\x1b(?:\[[0-?]*[ -/]*[@-~]|[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]*[0-~])/g;
/** an escape sequence cut at the end of a chunk: kept until the next chunk completes it */
// eslint-disable-next-line no-control-regex -- as above
const UNFINISHED = /\x1b(?:\[[0-?]*[ -/]*|[\]PX^_][^\x07\x1b]*\x1b?|[ -/]*)$/;

/** Text with its ANSI escape sequences removed (complete ones only). */
export function stripAnsi(text) {
  return text.replace(ESCAPE, '');
}

export class Screen {
  constructor(scrollback = SCROLLBACK) {
    this.scrollback = scrollback;
    this.lines = [''];
    this.col = 0;
    this.carry = '';
  }

  /** Takes a chunk of decoded output; escape sequences split across chunks are joined first. */
  write(chunk) {
    let text = this.carry + chunk;
    const cut = UNFINISHED.exec(text);
    this.carry = cut ? cut[0] : '';
    if (cut) text = text.slice(0, cut.index);
    for (const c of stripAnsi(text)) this.put(c);
    if (this.lines.length > this.scrollback) this.lines.splice(0, this.lines.length - this.scrollback);
  }

  put(c) {
    const last = this.lines.length - 1;
    if (c === '\n') {
      this.lines.push('');
      this.col = 0;
    } else if (c === '\r') this.col = 0;
    else if (c === '\b') this.col = Math.max(0, this.col - 1);
    else if (c === '\t') this.print(' '.repeat(8 - (this.col % 8)), last);
    else if (c < ' ' || c === '\x7f')
      return; // BEL and other controls: nothing to show
    else this.print(c, last);
  }

  /** Writes over what is under the cursor (as a terminal does after CR or backspace). */
  print(text, row) {
    const line = this.lines[row].padEnd(this.col, ' ');
    this.lines[row] = line.slice(0, this.col) + text + line.slice(this.col + text.length);
    this.col += text.length;
  }

  /**
   * Erasing what a shell's line editor erases: after a backspace, shells print "\b \b" or
   * ESC [K; the former needs nothing, the latter is dropped, so a line's tail past the cursor
   * may stay. The text shown: every line, trailing spaces trimmed.
   */
  text() {
    return this.lines.map((l) => l.trimEnd()).join('\n');
  }
}

/** The bytes a key press sends to the shell (a KeyboardEvent's key and modifiers), or null: not for the terminal. */
export function keyBytes({ key, ctrlKey = false, altKey = false, metaKey = false }) {
  if (metaKey) return null;
  const named = {
    Enter: '\r',
    Backspace: '\x7f',
    Tab: '\t',
    Escape: '\x1b',
    ArrowUp: '\x1b[A',
    ArrowDown: '\x1b[B',
    ArrowRight: '\x1b[C',
    ArrowLeft: '\x1b[D',
    Home: '\x1b[H',
    End: '\x1b[F',
    Delete: '\x1b[3~',
  };
  if (named[key]) return named[key];
  if ([...key].length !== 1) return null; // Shift, F5 and the like
  if (ctrlKey) {
    const code = key.toUpperCase().charCodeAt(0);
    // Ctrl-@ … Ctrl-_ (Ctrl-C is 3, Ctrl-D 4)
    return code >= 64 && code <= 95 ? String.fromCharCode(code - 64) : null;
  }
  return altKey ? `\x1b${key}` : key;
}
