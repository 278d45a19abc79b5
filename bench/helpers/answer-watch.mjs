// Watches workloads come back: after a "go <epoch ms>" line on stdin, asks every address
// ("get" on port PORT) every 100 ms until it answers with a number, and prints one JSON line
// {address: ms after <epoch ms>} once all answered or the deadline passed (missing = null).
// Run inside a lab host: nsenter --net=... node answer-watch.mjs PORT DEADLINE_MS ADDRESS...
import net from 'node:net';
import readline from 'node:readline';

const [portText, deadlineText, ...addresses] = process.argv.slice(2);
const port = Number(portText);
const deadlineMs = Number(deadlineText);

function ask(address) {
  return new Promise((resolve) => {
    let buffer = '';
    const socket = net.connect({ host: address, port });
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 400);
    socket.on('connect', () => socket.write('get\n'));
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      if (buffer.includes('\n')) done(/^\d+$/.test(buffer.split('\n')[0].trim()));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

async function watch(since) {
  const answered = Object.fromEntries(addresses.map((a) => [a, null]));
  await Promise.all(
    addresses.map(async (address) => {
      while (Date.now() - since < deadlineMs) {
        const tried = Date.now();
        if (await ask(address)) {
          answered[address] = Date.now() - since;
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 100 - (Date.now() - tried))));
      }
    }),
  );
  process.stdout.write(`${JSON.stringify(answered)}\n`);
  process.exit(0);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [word, at] = line.trim().split(' ');
  if (word === 'go') void watch(Number(at));
});
process.stdout.write('ready\n');
