import { describe, expect, it } from 'vitest';

// the dashboard's minimal terminal (plain browser JS, imported as it is served)
interface ScreenLike {
  write(chunk: string): void;
  text(): string;
  lines: string[];
}
const terminal = (await import(`../ui/${'terminal.js'}`)) as {
  Screen: new (scrollback?: number) => ScreenLike;
  stripAnsi: (text: string) => string;
  keyBytes: (e: { key: string; ctrlKey?: boolean; altKey?: boolean; metaKey?: boolean }) => string | null;
};

const shown = (...chunks: string[]) => {
  const screen = new terminal.Screen();
  for (const c of chunks) screen.write(c);
  return screen.text();
};

describe('the console terminal (terminal.js)', () => {
  it('shows text, CR/LF line ends and a prompt', () => {
    expect(shown('/ # echo $((6*7))\r\n42\r\n/ # ')).toBe('/ # echo $((6*7))\n42\n/ #');
  });

  it('CR returns to the line start and what follows overwrites', () => {
    expect(shown('progress 10%\rprogress 100%\n')).toBe('progress 100%\n');
    expect(shown('abcdef\rXY')).toBe('XYcdef');
  });

  it('backspace moves back; "\\b \\b" (a shell erasing a character) erases it', () => {
    expect(shown('ls -x', '\b \b', 'l')).toBe('ls -l');
    expect(shown('ab\b\bX')).toBe('Xb');
    expect(shown('\b\bok')).toBe('ok');
  });

  it('drops colours, cursor moves, titles and keypad modes, also when split across chunks', () => {
    expect(shown('\x1b[1;32mgreen\x1b[0m plain\x1b[K')).toBe('green plain');
    expect(shown('\x1b]0;root@box: ~\x07/ # ')).toBe('/ #');
    expect(shown('\x1b=\x1b>\x1b7x\x1b8')).toBe('x');
    expect(shown('a\x1b[', '31mb\x1b', '[0mc')).toBe('abc');
    expect(shown('t\x1b]0;ti', 'tle\x1b', '\\u')).toBe('tu');
    expect(terminal.stripAnsi('\x1b[?2004hroot\x1b[?2004l')).toBe('root');
  });

  it('ignores BEL and other controls; tabs go to the next multiple of 8', () => {
    expect(shown('a\x07b\x00c')).toBe('abc');
    expect(shown('ab\tc')).toBe('ab      c');
  });

  it('keeps at most its scrollback', () => {
    const screen = new terminal.Screen(3);
    screen.write('1\n2\n3\n4\n5');
    expect(screen.text()).toBe('3\n4\n5');
  });

  it('keys to the bytes a terminal sends', () => {
    expect(terminal.keyBytes({ key: 'a' })).toBe('a');
    expect(terminal.keyBytes({ key: 'Enter' })).toBe('\r');
    expect(terminal.keyBytes({ key: 'Backspace' })).toBe('\x7f');
    expect(terminal.keyBytes({ key: 'c', ctrlKey: true })).toBe('\x03');
    expect(terminal.keyBytes({ key: 'D', ctrlKey: true })).toBe('\x04');
    expect(terminal.keyBytes({ key: 'ArrowUp' })).toBe('\x1b[A');
    expect(terminal.keyBytes({ key: 'b', altKey: true })).toBe('\x1bb');
    expect(terminal.keyBytes({ key: 'Shift' })).toBeNull();
    expect(terminal.keyBytes({ key: 'v', metaKey: true })).toBeNull();
  });
});
