// The raw copy floor: N bytes over one plain TCP connection, as fast as the path allows.
//   node floor.mjs recv ADDRESS PORT BYTES   (answers "ok" once BYTES arrived, then exits)
//   node floor.mjs send ADDRESS PORT BYTES   (prints the milliseconds until that "ok")
import net from 'node:net';

const [mode, address, portText, bytesText] = process.argv.slice(2);
const port = Number(portText);
const total = Number(bytesText);

if (mode === 'recv') {
  const server = net.createServer((socket) => {
    let received = 0;
    socket.on('data', (chunk) => {
      received += chunk.length;
      if (received >= total) {
        socket.end('ok\n');
        server.close();
      }
    });
  });
  server.listen(port, address, () => process.stdout.write('listening\n'));
} else if (mode === 'send') {
  const chunk = Buffer.alloc(1 << 20);
  const socket = net.connect({ host: address, port }, () => {
    const started = process.hrtime.bigint();
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return socket.once('drain', pump);
      }
    };
    socket.once('data', () => {
      process.stdout.write(`${Number(process.hrtime.bigint() - started) / 1e6}\n`);
      socket.destroy();
    });
    pump();
  });
} else {
  process.stderr.write('usage: floor.mjs recv|send ADDRESS PORT BYTES\n');
  process.exit(2);
}
