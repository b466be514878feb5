// Every public name is documented, and every documented name exists: metrics (the catalog →
// docs/metrics.md), alerts (alerts/*.yml → docs/monitoring.md's table, a docs/runbooks.md
// section and a promtool test), config keys (the zod schema → docs/configuration.md's table)
// and CLI commands and flags (src/cli/main.ts → the README's usage block and docs/exporter.md).
// Module options have their own generated page (test/docs/module-options.test.ts).
// A failure names the thing and the place to add it (or to remove the stale name from).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { z } from 'zod';
import { ALLOWED, OPTIONS } from '../../src/cli/main.js';
import { configSchema } from '../../src/config/schema.js';
import { CATALOG } from '../../src/metrics/catalog.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');
const DOC_FILES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** First-column names of the markdown table rows of `md` (`| \`name\` | …`). */
function tableNames(md: string): string[] {
  return [...md.matchAll(/^\|\s*`([^`]+)`/gm)].map((m) => m[1]!);
}

/** Names missing from `documented`, as lines saying where to add them. */
function lacking(names: Iterable<string>, documented: Set<string>, where: string): string[] {
  return [...names].filter((n) => !documented.has(n)).map((n) => `${n}: not documented — add it to ${where}`);
}

const CONTRACT_NOT_YET_SERVED: string[] = [];

describe('metrics', () => {
  it('the not-yet-served contract metrics are really not in the catalog (else drop them from the list)', () => {
    expect(CONTRACT_NOT_YET_SERVED.filter((n) => n in CATALOG)).toEqual([]);
  });
  const md = read('docs/metrics.md');
  const rows = new Set(tableNames(md));
  it('every metric of src/metrics/catalog.ts has a row in docs/metrics.md', () => {
    expect(lacking(Object.keys(CATALOG), rows, 'a table in docs/metrics.md (`| `name` | type | labels | meaning | absent when |`)')).toEqual([]);
  });
  it('every nixos_desync_* metric named in README.md and docs/ exists (no stale names)', () => {
    // Contract metrics (fixed names) that other parts' docs already use while the exporter does
    // not serve them yet; each leaves this list when it enters the catalog (test below).
    const known = new Set([...Object.keys(CATALOG), ...CONTRACT_NOT_YET_SERVED]);
    const stale: string[] = [];
    for (const f of DOC_FILES) {
      read(f).split('\n').forEach((line, i) => {
        // Recording rules (`job:…:count`, `nixos_desync:…`) and wildcards (`nixos_desync_upgrade_unit_*`) are not metrics.
        for (const m of line.matchAll(/(?<![\w:])nixos_desync_[a-z0-9_]*[a-z0-9](?![\w:*{])/g)) {
          if (!known.has(m[0])) stale.push(`${f}:${i + 1}: ${m[0]} is not in src/metrics/catalog.ts — rename or remove it`);
        }
      });
    }
    expect(stale).toEqual([]);
  });
});

describe('alerts', () => {
  const alerts = new Set<string>();
  for (const dir of ['alerts', 'alerts/examples']) {
    for (const f of readdirSync(join(ROOT, dir)).filter((x) => x.endsWith('.rules.yml'))) {
      const doc = parse(read(`${dir}/${f}`)) as { groups: { rules: { alert?: string }[] }[] };
      for (const g of doc.groups) for (const r of g.rules) if (r.alert) alerts.add(r.alert);
    }
  }
  const monitoring = read('docs/monitoring.md');
  const glance = monitoring.slice(monitoring.indexOf('## Alerts at a glance'), monitoring.indexOf('\n## ', monitoring.indexOf('## Alerts at a glance') + 5));
  const runbooks = read('docs/runbooks.md');
  const sections = new Set([...runbooks.matchAll(/^## (\S+)\s*$/gm)].map((m) => m[1]!));
  const tests = readdirSync(join(ROOT, 'alerts/tests')).map((f) => read(`alerts/tests/${f}`)).join('\n');

  it('finds the shipped alerts', () => expect(alerts.size).toBeGreaterThanOrEqual(10));
  it('every alert has a row in docs/monitoring.md "Alerts at a glance"', () => {
    expect(lacking(alerts, new Set(tableNames(glance)), 'the "Alerts at a glance" table of docs/monitoring.md')).toEqual([]);
  });
  it('every alert has a section in docs/runbooks.md (its runbook_url anchor)', () => {
    expect(lacking(alerts, sections, 'docs/runbooks.md as a "## <AlertName>" section')).toEqual([]);
  });
  it('every alert has a promtool test in alerts/tests/', () => {
    const tested = new Set([...tests.matchAll(/alertname:\s*(\w+)/g)].map((m) => m[1]!));
    expect(lacking(alerts, tested, 'a `promtool test rules` file in alerts/tests/ (an alert_rule_test with `alertname: <AlertName>`)')).toEqual([]);
  });
  it('the alert table and the runbooks name only alerts that exist (no stale names)', () => {
    const stale = [...tableNames(glance), ...sections].filter((n) => /^NixosDesync/.test(n) && !alerts.has(n));
    expect(stale.map((n) => `${n}: in docs/monitoring.md or docs/runbooks.md but in no alerts/*.yml — remove it`)).toEqual([]);
  });
});

type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; out?: z.ZodType; options?: z.ZodType[]; shape?: Record<string, z.ZodType>; valueType?: z.ZodType };

/** Every key path of the config schema (`desyncs.<name>.checks`, `exporter.listenAddress`, …). */
function configKeys(schema: z.ZodType, path = '', out = new Set<string>()): Set<string> {
  const def = (schema as unknown as { _zod?: { def: Def } })._zod?.def;
  if (!def) return out;
  switch (def.type) {
    case 'default': case 'nullable': case 'optional': case 'prefault': case 'readonly': case 'catch':
      return configKeys(def.innerType!, path, out);
    case 'pipe':
      configKeys(def.in!, path, out);
      return configKeys(def.out!, path, out);
    case 'union':
      for (const o of def.options!) configKeys(o, path, out);
      return out;
    case 'object':
      for (const [k, v] of Object.entries(def.shape!)) {
        const p = path ? `${path}.${k}` : k;
        out.add(p);
        configKeys(v, p, out);
      }
      return out;
    case 'record':
      // Named entries (desyncs.<name>) have keys of their own; free-form data (nixpkgsConfig) has none.
      if (path === 'desyncs') configKeys(def.valueType!, `${path}.<name>`, out);
      return out;
    default:
      return out;
  }
}

describe('config keys', () => {
  const keys = configKeys(configSchema);
  const md = read('docs/configuration.md');
  // The key table is the first section; "Asking Prometheus" documents the keys of every `….prometheus` object.
  const table = new Set(tableNames(md.slice(0, md.indexOf('\n## '))));
  const endpointAt = md.indexOf('## Asking Prometheus');
  const endpoint = endpointAt < 0 ? [] : tableNames(md.slice(endpointAt, md.indexOf('\n## ', endpointAt + 5) >>> 0));
  for (const k of keys) {
    const m = /^(.*\.prometheus)\.(.+)$/.exec(k);
    if (m && endpoint.some((e) => m[2] === e || m[2]!.startsWith(`${e}.`))) table.add(k);
  }
  it('finds the schema keys', () => expect(keys.size).toBeGreaterThan(30));
  it('every key of src/config/schema.ts has a row in docs/configuration.md (an object: its keys do)', () => {
    const documented = new Set([...keys].filter((k) => table.has(k) || [...table].some((t) => t.startsWith(`${k}.`))));
    expect(lacking(keys, documented, 'the key table at the top of docs/configuration.md (`| `key` | default | meaning |`)')).toEqual([]);
  });
  it('every key in docs/configuration.md exists in the schema (no stale keys)', () => {
    const stale = [...table].filter((k) => /^[a-z][A-Za-z]*(\.|$)/.test(k) && !keys.has(k));
    expect(stale.map((k) => `${k}: in docs/configuration.md but not in src/config/schema.ts — rename or remove the row`)).toEqual([]);
  });
});

describe('CLI', () => {
  const readme = read('README.md');
  const usageBlock = /```\n(nixos-desync upgrade[\s\S]*?)```/.exec(readme)?.[1] ?? '';
  /** command → the flags its README usage line shows. */
  const shown = new Map(
    usageBlock.split('\n').filter((l) => l.startsWith('nixos-desync ')).map((l) => {
      const [, cmd, rest] = /^nixos-desync (\S+)(.*)$/.exec(l)!;
      return [cmd!, new Set([...rest!.matchAll(/--([a-z][\w.-]*)/g)].map((m) => m[1]!))] as const;
    }),
  );
  it('the README usage block shows every command with exactly the flags it accepts', () => {
    const problems: string[] = [];
    for (const [cmd, flags] of Object.entries(ALLOWED)) {
      const line = shown.get(cmd);
      if (!line) {
        problems.push(`command ${cmd}: not documented — add a "nixos-desync ${cmd} …" line to the usage block of README.md`);
        continue;
      }
      for (const f of flags) if (!line.has(f)) problems.push(`${cmd} --${f}: not documented — add it to the "nixos-desync ${cmd}" line of README.md's usage block`);
      for (const f of line) if (!flags.includes(f)) problems.push(`${cmd} --${f}: in README.md's usage block but ${cmd} does not accept it (src/cli/main.ts ALLOWED) — remove it`);
    }
    for (const cmd of shown.keys()) if (!(cmd in ALLOWED) && !cmd.startsWith('--')) problems.push(`command ${cmd}: in README.md's usage block but not in src/cli/main.ts — remove it`);
    expect(problems).toEqual([]);
  });
  it('every flag is defined (src/cli/main.ts OPTIONS) and every serve flag has a row in docs/exporter.md', () => {
    const defined = new Set(Object.keys(OPTIONS));
    const used = new Set(Object.values(ALLOWED).flat());
    expect([...used].filter((f) => !defined.has(f))).toEqual([]);
    const exporterFlags = new Set(tableNames(read('docs/exporter.md')).map((n) => n.split(' ')[0]!));
    expect(lacking(ALLOWED.serve!.filter((f) => f !== 'config').map((f) => `--${f}`), exporterFlags, 'the "Flags and config" table of docs/exporter.md')).toEqual([]);
  });
});
