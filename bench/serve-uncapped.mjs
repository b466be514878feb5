#!/usr/bin/env node
// Benchmark helper: `nixos-desync serve` as the CLI starts it, but with the in-flight cap
// (default 32 → 503 beyond it) lifted, so it serves 64 concurrent scrapers like
// node_exporter with --web.max-requests=0. Usage: serve-uncapped.mjs CONFIG ADDR
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { parseConfig } = await import(join(ROOT, 'dist/src/config/load.js'));
const { startExporter } = await import(join(ROOT, 'dist/src/http/serve.js'));
const [configPath, addr] = process.argv.slice(2);
const config = parseConfig(JSON.parse(readFileSync(configPath, 'utf8')), configPath);
const io = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env };
const running = await startExporter(config, { listenAddress: addr, io, limits: { maxInFlight: 1_000_000 } });
process.on('SIGTERM', () => void running.close().then(() => process.exit(0)));
