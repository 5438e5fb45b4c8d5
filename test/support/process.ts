import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

/**
 * Starts a real Roster process from the sources (through tsx), as `npm start` would run it;
 * `entry` replaces src/main.ts with a test script that prepares something and then imports it.
 */
export function startRoster(env: Record<string, string>, entry = 'src/main.ts'): Running {
  let out = '';
  let err = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Waits for the "roster listening" log line and returns the port it names. */
export async function listeningPort(r: Running, timeoutMs = 20000): Promise<number> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    for (const line of r.stdout().split('\n')) {
      if (line.includes('"roster listening"')) return JSON.parse(line).port as number;
    }
    if (r.child.exitCode !== null) throw new Error(`roster exited early: ${r.stderr()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`roster did not start: ${r.stdout()} ${r.stderr()}`);
}
