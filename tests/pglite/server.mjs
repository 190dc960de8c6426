// PostgreSQL 17 with TimescaleDB 2.23 compiled to WebAssembly (PGlite), in memory, served
// over the PostgreSQL wire protocol on 127.0.0.1:PORT for the store's tests.
// Usage: node server.mjs PORT. Prints "ready PORT" once it accepts connections.
// One client connection at a time (PGlite is single-session); background jobs do not run.
import { PGlite } from '@electric-sql/pglite';
import { timescaledb } from '@electric-sql/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.mjs PORT');
  process.exit(2);
}
const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port });
server.addEventListener?.('error', (event) => {
  console.error('server error', event.detail ?? event);
  process.exit(1);
});
await server.start();
console.log(`ready ${port}`);

async function stop() {
  await server.stop();
  await db.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
