// Socket activation (`--web.systemd-socket`, as exporter-toolkit's): systemd opens the
// listening socket and passes it as fd 3 with LISTEN_FDS (how many) and LISTEN_PID (for which
// process) — sd_listen_fds(3). The exporter then needs no privilege to bind a port, and the
// socket unit decides the address.
import { DesyncError } from '../util/errors.js';

/** The first fd systemd passes (SD_LISTEN_FDS_START). */
export const SD_LISTEN_FDS_START = 3;

/**
 * The listening fd systemd passed to this process, or a DesyncError saying why there is none.
 * Like sd_listen_fds(unset_environment=1), it removes LISTEN_* from `env` so that no child
 * process takes the socket for its own.
 */
export function systemdListenFd(env: NodeJS.ProcessEnv, pid: number): number {
  const fds = env.LISTEN_FDS, forPid = env.LISTEN_PID;
  for (const k of ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete env[k];
  const hint = 'start serve from a systemd .socket unit (ListenStream=), or drop --web.systemd-socket and use --web.listen-address';
  if (fds === undefined || forPid === undefined) {
    throw new DesyncError('E_LISTEN', `--web.systemd-socket: no socket passed by systemd (LISTEN_FDS/LISTEN_PID are not set): ${hint}`);
  }
  if (!/^[0-9]+$/.test(forPid) || Number(forPid) !== pid) {
    throw new DesyncError('E_LISTEN', `--web.systemd-socket: the sockets were passed to process ${forPid}, not to this one (${pid}): ${hint}`);
  }
  if (!/^[0-9]+$/.test(fds) || Number(fds) < 1) {
    throw new DesyncError('E_LISTEN', `--web.systemd-socket: LISTEN_FDS=${JSON.stringify(fds)}: no socket was passed: ${hint}`);
  }
  if (Number(fds) > 1) {
    throw new DesyncError('E_LISTEN', `--web.systemd-socket: ${fds} sockets passed; serve listens on exactly one (one ListenStream= in the socket unit)`);
  }
  return SD_LISTEN_FDS_START;
}
