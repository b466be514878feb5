// Placeholder until the exporter lands (issue 3).
import type { Config } from '../config/schema.js';
import { DesyncError } from '../util/errors.js';

export async function serve(_config: Config, _opts: unknown): Promise<number> {
  throw new DesyncError('E_USAGE', 'serve is not implemented yet');
}
