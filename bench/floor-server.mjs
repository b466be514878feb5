#!/usr/bin/env node
// Benchmark floor: a bare node:http server answering one body from memory on every request.
// Usage: floor-server.mjs BODY_FILE PORT   (prints "listening" once it accepts connections)
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const [file, port] = process.argv.slice(2);
const body = readFileSync(file);
const headers = { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store' };
const srv = createServer((_req, res) => {
  res.writeHead(200, headers);
  res.end(body);
});
srv.keepAliveTimeout = 5_000;
srv.listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => srv.close(() => process.exit(0)));
