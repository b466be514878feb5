// The real-systemd test harness (test/helpers/systemd.ts): boot time to `running`, stop time,
// reboot time and the container's memory (PSS of every process in its PID namespace), over N
// boots. Root, after scripts/setup.sh test. Run (vite-node runs the TypeScript helper as is):
//   node node_modules/vite-node/vite-node.mjs bench/systemd-boot.ts [-- --boots 5]
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { bootSystemd } from '../test/helpers/systemd.js';

const i = process.argv.indexOf('--boots');
const boots = i > 0 ? Number(process.argv[i + 1]) : 5;

function pssKb(leader: number): number {
  const ns = readlinkSync(`/proc/${leader}/ns/pid`);
  let kb = 0;
  for (const p of readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d))) {
    try {
      if (readlinkSync(`/proc/${p}/ns/pid`) !== ns) continue;
      kb += Number(/^Pss:\s+([0-9]+) kB$/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
    } catch {
      /* gone */
    }
  }
  return kb;
}

const rows: Array<{ boot: number; reboot: number; stop: number; pssMb: number }> = [];
for (let n = 0; n < boots; n++) {
  const c = await bootSystemd({});
  const boot = c.bootMs;
  await new Promise((r) => setTimeout(r, 1000)); // settled
  const pssMb = pssKb(c.leader) / 1024;
  await c.reboot();
  const reboot = c.bootMs;
  const t = performance.now();
  await c.stop();
  rows.push({ boot, reboot, stop: performance.now() - t, pssMb });
}
const stat = (k: keyof (typeof rows)[0]): string => {
  const v = rows.map((r) => r[k]).sort((a, b) => a - b);
  return `median ${v[Math.floor(v.length / 2)]!.toFixed(k === 'pssMb' ? 1 : 0)}, min ${v[0]!.toFixed(k === 'pssMb' ? 1 : 0)}, max ${v[v.length - 1]!.toFixed(k === 'pssMb' ? 1 : 0)}`;
};
console.log(`${boots} boots: boot to running (ms) ${stat('boot')}; boot after a reboot (ms) ${stat('reboot')}; stop (ms) ${stat('stop')}; PSS (MB) ${stat('pssMb')}`);
