#!/usr/bin/env -S node --max-semi-space-size=2 --optimize-for-size
// Entry point: parses argv, maps errors to the contract's exit codes (0 1 64 75 78).
import { parseArgs } from 'node:util';
import { readFileSync, realpathSync, constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { configWarnings, effectiveConfig, loadConfig, resolveConfigPath } from '../config/load.js';
import { DesyncError, errorMessage, isDesyncError } from '../util/errors.js';
import { createLogger } from '../util/log.js';

export const EXIT = { ok: 0, failed: 1, usage: 64, locked: 75, config: 78 } as const;

// package.json sits three levels up from dist/src/cli/, two from src/cli/ (tests run sources).
const PKG = new URL(import.meta.url.endsWith('.ts') ? '../../package.json' : '../../../package.json', import.meta.url);
export const VERSION: string = (JSON.parse(readFileSync(PKG, 'utf8')) as { version: string }).version;

const HELP = `nixos-desync ${VERSION} — desync upgrade loop and Prometheus exporter for NixOS

Usage:
  nixos-desync upgrade      --config FILE [--dry-run] [--json] [--retry]   one run of the loop
  nixos-desync serve        --config FILE [--web.listen-address ADDR] [--web.config.file F]
                            [--web.systemd-socket] [--web.max-requests N] [--web.disable-exporter-metrics]
  nixos-desync status       --config FILE [--json]
  nixos-desync generations  --config FILE [--json]   which sources each generation was built from
  nixos-desync recover      --config FILE            finish or roll back an interrupted run (boot time)
  nixos-desync check-config --config FILE [--json]
  nixos-desync verify-boot  --config FILE            health gate of the booted system (run at boot)
  nixos-desync reboot       --config FILE [--dry-run] reboot now if required and allowed, else say why
  nixos-desync --help | --version

--config defaults to $NIXOS_DESYNC_CONFIG, then /etc/nixos-desync/config.json.
Exit codes: 0 success, 1 run failed, 64 usage error, 75 another run holds the lock,
78 invalid config. Documentation: docs/ in the source tree.
`;

import { createSignalHandler } from './signals.js';
import { createShield, type Shield } from '../util/shield.js';
export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** stderr is a terminal: long commands get a live progress line there. */
  stderrIsTTY?: boolean;
  /** Held during rollbacks: the entry's second SIGTERM/SIGINT waits for them (cli/signals.ts). */
  shield?: Shield;
}

export const OPTIONS = {
  config: { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  retry: { type: 'boolean' },
  'web.listen-address': { type: 'string' },
  'web.config.file': { type: 'string' },
  'web.systemd-socket': { type: 'boolean' },
  'web.max-requests': { type: 'string' },
  'web.disable-exporter-metrics': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

export const ALLOWED: Record<string, string[]> = {
  upgrade: ['config', 'dry-run', 'json', 'retry'],
  generations: ['config', 'json'],
  recover: ['config'],
  serve: ['config', 'web.listen-address', 'web.config.file', 'web.systemd-socket', 'web.max-requests', 'web.disable-exporter-metrics'],
  status: ['config', 'json'],
  'check-config': ['config', 'json'],
  'verify-boot': ['config'],
  reboot: ['config', 'dry-run'],
};

export async function main(argv: string[], io: Io, signal?: AbortSignal): Promise<number> {
  // With --json, stdout carries one JSON object whatever happens, errors included (64, 75, 78).
  const wantsJson = argv.includes('--json');
  const usage = (message: string, help = false): number => {
    io.stderr(`nixos-desync: ${message}\n${help ? `\n${HELP}` : ''}`);
    if (wantsJson) printJsonError(io, EXIT.usage, 'E_USAGE', message);
    return EXIT.usage;
  };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return usage(parseArgsMessage(err, argv), true);
  }
  const { values, positionals } = parsed;
  if (values.version) {
    io.stdout(`nixos-desync ${VERSION}\n`);
    return EXIT.ok;
  }
  if (values.help) {
    io.stdout(HELP);
    return EXIT.ok;
  }
  if (positionals.length === 0) {
    if (!wantsJson) {
      io.stderr(HELP);
      return EXIT.usage;
    }
    return usage('no command given', true);
  }
  const [command, ...extra] = positionals;
  const allowed = ALLOWED[command!];
  if (!allowed) return usage(`unknown command "${command}"`, true);
  if (extra.length > 0) return usage(`unexpected argument "${extra[0]}"`);
  const bad = Object.keys(values).filter((k) => !allowed.includes(k));
  if (bad.length > 0) return usage(`option --${bad[0]} does not apply to ${command}`);
  const configPath = resolveConfigPath(values.config, io.env);
  try {
    const config = await loadConfig(configPath);
    // Flake mode: the inputs the config names must be lockable nodes of <flake.path>/flake.lock.
    if (command === 'check-config' || command === 'upgrade') {
      const { assertFlakeConfig } = await import('../source/flake-config.js');
      for (const w of await assertFlakeConfig(config, configPath, { requireLock: command === 'upgrade' })) io.stderr(`warning: ${w}\n`);
      for (const w of configWarnings(config)) io.stderr(`warning: ${w}\n`);
    }
    switch (command) {
      case 'check-config': {
        // The exporter's web config is part of the configuration: refuse a bad one here too.
        // It is often a secret that only exists at run time (a systemd credential), so a file
        // that cannot be read here is a warning, not an error.
        const web = config.exporter.webConfigFile;
        if (web !== null) {
          if (await access(web, constants.R_OK).then(() => true, () => false)) {
            const { loadWebConfig } = await import('../http/web-config.js');
            await loadWebConfig(web);
          } else {
            io.stderr(`warning: exporter.webConfigFile ${web} cannot be read here; it is checked when serve starts\n`);
          }
        }
        io.stdout(JSON.stringify(effectiveConfig(config), null, 2) + '\n');
        io.stderr(`${configPath}: valid\n`);
        return EXIT.ok;
      }
      case 'status': {
        const { collectStatus, renderStatus } = await import('./status.js');
        const doc = await collectStatus(config);
        io.stdout(values.json ? JSON.stringify(doc, null, 2) + '\n' : renderStatus(doc));
        return EXIT.ok;
      }
      case 'upgrade': {
        const json = values.json ?? false;
        // Progress goes to stdout for people; with --json stdout carries only the result.
        const logger = createLogger({ write: json ? io.stderr : io.stdout, format: 'text' });
        // Loaded here: `serve` (the long-running process) never holds the upgrade path.
        const [{ runUpgrade }, { upgradeDeps }] = await Promise.all([import('../upgrade/run.js'), import('../wire.js')]);
        const progress = { live: io.stderrIsTTY ? { write: io.stderr } : null };
        const res = await runUpgrade({ ...upgradeDeps(config, logger, io.env, signal, progress), shield: io.shield }, { dryRun: values['dry-run'] ?? false, retry: values.retry ?? false });
        if (json) io.stdout(JSON.stringify(res, null, 2) + '\n');
        else io.stdout(`run ${res.result}${res.dryRun ? ' (dry run)' : ''} in ${res.durationSeconds.toFixed(1)}s — exit ${res.exitCode}\n`);
        return res.exitCode;
      }
      case 'generations': {
        const { collectGenerations, renderGenerations } = await import('./generations.js');
        const gens = await collectGenerations(config);
        io.stdout(values.json ? JSON.stringify(gens, null, 2) + '\n' : renderGenerations(gens));
        return EXIT.ok;
      }
      case 'recover': {
        const logger = createLogger({ write: io.stdout, format: 'text' });
        const [{ recoverOnly }, { upgradeDeps }] = await Promise.all([import('../upgrade/run.js'), import('../wire.js')]);
        const id = await recoverOnly({ ...upgradeDeps(config, logger, io.env, signal), shield: io.shield });
        io.stdout(id === null ? 'nothing to recover: the last run ended cleanly\n' : `recovered interrupted run ${id}\n`);
        return EXIT.ok;
      }
      case 'verify-boot': {
        const logger = createLogger({ write: io.stdout, format: 'text' });
        const [{ verifyBoot }, { upgradeDeps }] = await Promise.all([import('../reboot/verify-boot.js'), import('../wire.js')]);
        const d = upgradeDeps(config, logger, io.env, signal);
        return (await verifyBoot({ ...d, system: d.system!, env: io.env })).exitCode;
      }
      case 'reboot': {
        const logger = createLogger({ write: io.stdout, format: 'text' });
        const [{ rebootIfAllowed }, { createStateStore }, { runCommand }] = await Promise.all([import('../reboot/command.js'), import('../state/store.js'), import('../util/exec.js')]);
        const out = await rebootIfAllowed({ config, store: createStateStore(config.stateDir), run: runCommand, logger, env: io.env }, { dryRun: values['dry-run'] ?? false });
        return out.exitCode;
      }
      case 'serve': {
        const maxRequests = values['web.max-requests'];
        // exporter-toolkit's default is 40 concurrent scrapes; 0 means no limit, as there.
        if (maxRequests !== undefined && !/^[0-9]{1,6}$/.test(maxRequests)) return usage(`--web.max-requests ${JSON.stringify(maxRequests)}: a whole number of requests at once (0 = no limit)`);
        const { serve } = await import('../http/serve.js');
        return await serve(config, {
          listenAddress: values['web.listen-address'],
          webConfigFile: values['web.config.file'],
          systemdSocket: values['web.systemd-socket'] ?? false,
          maxRequests: maxRequests === undefined ? undefined : Number(maxRequests),
          exporterMetrics: !(values['web.disable-exporter-metrics'] ?? false),
          io,
          signal,
        });
      }
    }
    return EXIT.usage;
  } catch (err) {
    const code = reportError(err, io);
    if (wantsJson) {
      const problems = isDesyncError(err) ? (err.details.problems as unknown) : undefined;
      printJsonError(io, code, isDesyncError(err) ? err.code : 'E_INTERNAL', isDesyncError(err) ? err.message : errorMessage(err), problems);
    }
    return code;
  }
}

/** node:util parseArgs' errors in our words: the option, the command, what it accepts. */
function parseArgsMessage(err: unknown, argv: string[]): string {
  const code = (err as { code?: string }).code;
  const command = argv.find((a) => !a.startsWith('-') && a in ALLOWED);
  const accepts = command ? ` (${command} accepts ${ALLOWED[command]!.map((o) => `--${o}`).join(', ')})` : '';
  const option = /'(-{1,2}[^']*)'/.exec(errorMessage(err))?.[1] ?? '';
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option}${command ? ` for ${command}` : ''}${accepts}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const name = option.split(' ')[0]!;
    return /does not take/.test(errorMessage(err)) ? `option ${name} takes no value` : `option ${name} needs a value`;
  }
  return errorMessage(err);
}

/** The --json result of a command that could not run: its exit code and the error. */
function printJsonError(io: Io, exitCode: number, code: string, message: string, problems?: unknown): void {
  const error: Record<string, unknown> = { code, message };
  if (Array.isArray(problems)) error.problems = problems;
  io.stdout(JSON.stringify({ exitCode, result: null, error }, null, 2) + '\n');
}

export function exitCodeFor(err: unknown): number {
  if (!isDesyncError(err)) return EXIT.failed;
  switch (err.code) {
    case 'E_USAGE':
      return EXIT.usage;
    case 'E_CONFIG':
    case 'E_WEB_CONFIG':
      return EXIT.config;
    case 'E_LOCKED':
      return EXIT.locked;
    default:
      return EXIT.failed;
  }
}

function reportError(err: unknown, io: Io): number {
  const msg = err instanceof DesyncError ? err.message : `unexpected error: ${errorMessage(err)}`;
  io.stderr(`nixos-desync: ${msg}\n`);
  if (!(err instanceof DesyncError) && io.env.NIXOS_DESYNC_DEBUG) io.stderr(String((err as Error)?.stack) + '\n');
  return exitCodeFor(err);
}

const isEntry = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
})();
if (isEntry) {
  const ac = new AbortController();
  const shield = createShield();
  const onSignal = createSignalHandler({ abort: () => ac.abort(), exit: (code) => process.exit(code), stderr: (s) => process.stderr.write(s), shield });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  main(process.argv.slice(2), {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    env: process.env,
    stderrIsTTY: process.stderr.isTTY === true,
    shield,
  }, ac.signal).then((code) => {
    process.exitCode = code;
  }, (err: unknown) => {
    process.stderr.write(`nixos-desync: unexpected error: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  });
}
