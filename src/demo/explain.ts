// What the demo stories print besides the runs: why a demo system "requires a reboot", and the
// lines a newcomer pastes to run the CLI on the demo host outside the script.

/** Printed once, after the first status that says REBOOT REQUIRED. */
export const REBOOT_NOTE = `
(REBOOT REQUIRED: every fake nixpkgs revision has its own fake \`linux\`, so each new system's
 kernel differs from the one the demo host "booted" with — a reboot trigger (docs/upgrade-loop.md).
 On a real host \`nixos-desync reboot\`, or reboot.enable with a window, applies it; the demo never
 reboots, so it stays required.)
`;

/** Prints REBOOT_NOTE the first time `text` (a status output) says REBOOT REQUIRED. */
export function rebootExplainer(out: (s: string) => void): (text: string) => void {
  let explained = false;
  return (text) => {
    if (explained || !text.includes('REBOOT REQUIRED')) return;
    explained = true;
    out(REBOOT_NOTE);
  };
}

/** `$'…'` quoting (bash, zsh): a value with newlines, such as NIX_CONFIG, on one line. */
export function ansiQuote(s: string): string {
  return `$'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
}

/**
 * The shell lines that run the CLI on a demo host from any shell: its stand-in systemctl first
 * on PATH (the health gate asks it for failed units) and the demo's offline Nix settings.
 */
export function runItYourself(host: { binDir: string; configPath: string }, nixConfig: string | undefined): string {
  return [
    'To run the loop on this demo host yourself (its stand-in systemctl first on PATH, the same Nix settings):',
    `  export PATH=${host.binDir}:$PATH`,
    ...(nixConfig ? [`  export NIX_CONFIG=${ansiQuote(nixConfig)}`] : []),
    `  npx nixos-desync upgrade --config ${host.configPath}`,
    '',
  ].join('\n');
}
