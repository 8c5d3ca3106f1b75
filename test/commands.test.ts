import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeTail, processGroupAlive, runCommand, type RunCommandOptions } from '../src/activities/commands';

let dir: string;
let n = 0;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'weaver-cmd-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The commands these tests end early sleep 1000 s: whether they were ended is what the result
 * says (timed out, cancelled, the signal, nothing left of the group, no line they print at their
 * end), never how fast. The only time asserted is a relation to that natural end: well before it.
 */
const NATURAL_END_MS = 1000 * 1000;
const endedEarly = (elapsedMs: number) => expect(elapsedMs).toBeLessThan(NATURAL_END_MS / 2);
const logPath = () => path.join(dir, 'logs', `run-${++n}.log`);
const run = (o: Partial<RunCommandOptions> & Pick<RunCommandOptions, 'command'>) =>
  runCommand({ cwd: dir, timeoutSec: 30, logFile: logPath(), ...o });

/** Live (non-zombie) members of process group `pgid`, independently of the code under test. */
function liveGroupMembers(pgid: number): string[] {
  const out = execFileSync('ps', ['-e', '-o', 'pid=,pgid=,stat=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && Number(f[1]) === pgid && !f[2].startsWith('Z'))
    .map((f) => f.join(' '));
}

describe('runCommand', () => {
  it('(control) liveGroupMembers and processGroupAlive see a live group', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn('sh', ['-c', 'sleep 30 & sleep 30'], { detached: true, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));
    try {
      expect(liveGroupMembers(child.pid!).length).toBe(3);
      expect(await processGroupAlive(child.pid!)).toBe(true);
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
  });

  it('captures exit 0 and the output, interleaving stdout and stderr into the log', async () => {
    const logFile = logPath();
    const r = await runCommand({
      command: 'echo out1; echo err1 >&2; sleep 0.05; echo out2; pwd',
      cwd: dir,
      timeoutSec: 10,
      logFile,
    });
    expect(r.exitCode).toBe(0);
    expect(r.signal).toBeNull();
    expect(r.timedOut).toBe(false);
    expect(r.cancelled).toBe(false);
    expect(r.pid).toEqual(expect.any(Number));
    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain('err1\n');
    expect(log.indexOf('out1')).toBeLessThan(log.indexOf('out2'));
    expect(log.indexOf('err1')).toBeLessThan(log.indexOf('out2'));
    expect(log).toContain(`${dir}\n`);
    expect(r.tail).toBe(log);
    expect(r.outputBytes).toBe(Buffer.byteLength(log));
  });

  it('captures a non-zero exit code', async () => {
    const r = await run({ command: 'echo failing; exit 3' });
    expect(r.exitCode).toBe(3);
    expect(r.timedOut).toBe(false);
    expect(r.tail).toBe('failing\n');
  });

  it('runs an argv command without a shell, spaces in arguments intact', async () => {
    const r = await run({
      command: [process.execPath, '-e', 'console.log(JSON.stringify(process.argv.slice(1)))', 'hello world', '$HOME', '; exit 9'],
    });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.tail)).toEqual(['hello world', '$HOME', '; exit 9']);
  });

  it('keeps a bounded tail: the last tailBytes of the output, valid UTF-8', async () => {
    const r = await run({ command: 'seq 1 20000', tailBytes: 100 });
    const full = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join('');
    expect(r.outputBytes).toBe(Buffer.byteLength(full));
    expect(Buffer.byteLength(r.tail)).toBeLessThanOrEqual(100);
    expect(r.tail).toBe(full.slice(-100));

    // Multi-byte characters: a tail boundary inside a character is dropped, never garbled.
    const m = await run({ command: [process.execPath, '-e', "process.stdout.write('é'.repeat(5000) + 'END')"], tailBytes: 100 });
    expect(Buffer.byteLength(m.tail)).toBeLessThanOrEqual(100);
    expect(m.tail).toMatch(/^é+END$/);
    expect(m.tail.length).toBeGreaterThanOrEqual(49);
    expect(m.tail).not.toContain('\uFFFD');
  });

  it('streams 10 MB of output fully to the log while the tail stays bounded', async () => {
    const logFile = logPath();
    const r = await runCommand({
      command: "head -c 10000000 /dev/zero | tr '\\0' 'x'",
      cwd: dir,
      timeoutSec: 60,
      logFile,
      tailBytes: 4096,
    });
    expect(r.exitCode).toBe(0);
    expect(statSync(logFile).size).toBe(10_000_000);
    expect(r.outputBytes).toBe(10_000_000);
    expect(Buffer.byteLength(r.tail)).toBe(4096);
    expect(r.tail).toBe('x'.repeat(4096));
  });

  it('kills the whole process group on timeout, grandchildren included, and resolves promptly', async () => {
    const logFile = logPath();
    const t0 = Date.now();
    const r = await runCommand({
      command: 'echo started; sleep 1000 & sleep 1000; echo finished',
      cwd: dir,
      timeoutSec: 1,
      logFile,
    });
    const elapsed = Date.now() - t0;
    expect(r.timedOut).toBe(true);
    expect(r.cancelled).toBe(false);
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBe('SIGTERM');
    // Not before its timeout (a lower bound a slow machine only makes safer), and ended, not finished.
    expect(elapsed).toBeGreaterThanOrEqual(900);
    endedEarly(elapsed);
    expect(r.tail).toContain('started');
    expect(r.tail).not.toContain('finished');
    expect(r.tail).toContain('timed out');
    expect(liveGroupMembers(r.pid!)).toEqual([]);
    expect(await processGroupAlive(r.pid!)).toBe(false);
  });

  it('SIGKILLs a group that ignores SIGTERM after the grace period', async () => {
    const t0 = Date.now();
    const r = await run({
      command: "trap '' TERM; sh -c \"trap '' TERM; sleep 1000\" & sleep 1000; wait; echo finished",
      timeoutSec: 1,
      killGraceMs: 500,
    });
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.tail).not.toContain('finished');
    endedEarly(Date.now() - t0);
    expect(liveGroupMembers(r.pid!)).toEqual([]);
  });

  it('resolves when the command exits but a background process keeps the pipe open, and cleans it up', async () => {
    const t0 = Date.now();
    const r = await run({ command: 'sleep 1000 & echo leader done' });
    endedEarly(Date.now() - t0);
    expect(r.exitCode).toBe(0);
    expect(r.timedOut).toBe(false);
    expect(r.tail).toBe('leader done\n');
    expect(liveGroupMembers(r.pid!)).toEqual([]);
  });

  it('cancels through an AbortSignal, killing the group', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 500);
    const r = await run({ command: 'sleep 1000 & sleep 1000; echo finished', signal: ac.signal });
    expect(r.cancelled).toBe(true);
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBeNull();
    expect(r.tail).not.toContain('finished');
    endedEarly(Date.now() - t0);
    expect(liveGroupMembers(r.pid!)).toEqual([]);
  });

  it('does not start at all when the signal is already aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    const marker = path.join(dir, 'ran');
    const r = await run({ command: `touch ${marker}`, signal: ac.signal });
    expect(r.cancelled).toBe(true);
    expect(r.pid).toBeUndefined();
    expect(() => statSync(marker)).toThrow();
  });

  it('calls onTick while the command runs', async () => {
    let ticks = 0;
    const t0 = Date.now();
    const r = await run({ command: 'sleep 2.5', onTick: () => ticks++ });
    const elapsed = Date.now() - t0;
    expect(r.exitCode).toBe(0);
    expect(ticks).toBeGreaterThanOrEqual(1);
    // About one a second (the default tickMs) for as long as it really ran, however slow the machine.
    expect(ticks).toBeLessThanOrEqual(Math.floor(elapsed / 1000) + 2);
  });

  it('keeps running if onTick throws', async () => {
    const r = await run({
      command: 'sleep 0.3; echo ok',
      tickMs: 50,
      onTick: () => {
        throw new Error('heartbeat failed');
      },
    });
    expect(r.exitCode).toBe(0);
    expect(r.tail).toBe('ok\n');
  });

  it('redacts secrets from the tail and the log', async () => {
    const logFile = logPath();
    const secret = 'topsecret-value-123456';
    const r = await runCommand({
      command: 'echo "the key is $MY_SERVICE_API_KEY"; echo "explicit: $OTHER"; echo "Authorization: Bearer abcdefghijklmnop"',
      cwd: dir,
      timeoutSec: 10,
      logFile,
      env: { ...process.env, MY_SERVICE_API_KEY: secret, OTHER: 'explicit-secret-999' },
      secrets: ['explicit-secret-999'],
    });
    expect(r.exitCode).toBe(0);
    const log = readFileSync(logFile, 'utf8');
    for (const text of [r.tail, log]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain('explicit-secret-999');
      expect(text).not.toContain('abcdefghijklmnop');
      expect(text).toContain('the key is [REDACTED]');
      expect(text).toContain('explicit: [REDACTED]');
      expect(text).toContain('Bearer [REDACTED]');
    }
  });

  it('redacts a secret that lands right at the start of the tail window', async () => {
    const secret = 'ZZsecretZZ-0123456789';
    // The tail window (64 bytes) starts in the middle of the secret.
    const r = await run({
      command: [process.execPath, '-e', `process.stdout.write('a'.repeat(5000) + '${secret}' + 'b'.repeat(50))`],
      tailBytes: 64,
      secrets: [secret],
    });
    expect(Buffer.byteLength(r.tail)).toBeLessThanOrEqual(64);
    expect(r.tail).toMatch(/b{50}$/);
    expect(r.tail).not.toMatch(/0123456789/);
    expect(r.tail).toMatch(/\]b{50}$/);
  });

  it('reports a missing executable as exit 127 instead of throwing', async () => {
    const r = await run({ command: ['definitely-not-a-command-xyz', 'arg'] });
    expect(r.exitCode).toBe(127);
    expect(r.error).toMatch(/ENOENT/);
    expect(r.tail).toContain('cannot start command');
    const s = await run({ command: 'definitely-not-a-command-xyz' });
    expect(s.exitCode).toBe(127);
  });

  it('with sampleUsageMs, measures the whole tree from /proc: a forked hog and a reaped grandchild count, off by default', async () => {
    const hog = `node -e "const b = Buffer.alloc(100 << 20, 1); setTimeout(() => b[0], 700)"`;
    const burn = `node -e "let x = 0; for (let i = 0; i < 2e8; i++) x += i; if (!x) process.exit(1)"`;
    // The burner is a grandchild (sh → sh → node), reaped before the command ends: only cutime has it.
    const [mem, cpu, trivial, off] = await Promise.all([
      run({ command: `${hog} & wait`, sampleUsageMs: 50 }),
      run({ command: `sh -c '${burn}; true'; true`, sampleUsageMs: 50 }),
      run({ command: 'true', sampleUsageMs: 50 }),
      run({ command: 'true' }),
    ]);
    for (const r of [mem, cpu, trivial]) expect(r.exitCode).toBe(0);
    expect(mem.usage!.peakMemoryMb).toBeGreaterThanOrEqual(90);
    expect(trivial.usage!.peakMemoryMb).toBeLessThan(20);
    expect(cpu.usage!.cpuMs).toBeGreaterThan(trivial.usage!.cpuMs + 500);
    expect(cpu.usage!.cpuMs).toBeGreaterThan(mem.usage!.cpuMs + 300);
    expect(cpu.usage!.samples).toBeGreaterThan(2);
    expect(off.usage).toBeUndefined();
  });

  describe('output bound (maxOutputBytes)', () => {
    const MIB = 1024 * 1024;

    it('past the bound keeps the head and the tail with a marker of what was dropped; the command runs to its end', async () => {
      const logFile = logPath();
      // 64 MiB of lines through a 1 MiB bound; the command's last words and exit status still count.
      const r = await runCommand({ command: `echo FIRST-LINE; yes 'noise line' | head -c ${64 * MIB}; echo; echo LAST-LINE; exit 3`, cwd: dir, timeoutSec: 120, logFile, maxOutputBytes: MIB });
      expect(r.exitCode).toBe(3);
      expect(r.outputBytes).toBeGreaterThan(64 * MIB);
      const log = readFileSync(logFile, 'utf8');
      expect(statSync(logFile).size).toBeLessThanOrEqual(MIB + 200);
      expect(log.startsWith('FIRST-LINE\nnoise line\n')).toBe(true);
      expect(log).toMatch(/\nnoise line\nn[a-z ]*\nLAST-LINE\n$/);
      const marker = /\n… ([\d.]+) MiB of output dropped \(output limit: the first and the last 512 KiB are kept\) …\n/.exec(log);
      expect(marker).not.toBeNull();
      // The marker says what is not there: what came in, less what was kept (cut on whole lines).
      expect(r.droppedBytes).toBe(r.outputBytes - (statSync(logFile).size - Buffer.byteLength(marker![0])));
      expect(Number(marker![1])).toBeCloseTo(r.droppedBytes / MIB, 0);
      expect(log.slice(0, marker!.index)).toMatch(/\nnoise line\n$/);
      expect(log.slice(marker!.index + marker![0].length)).toMatch(/^noise line\n/);
      // The short tail for the result is as small as ever.
      expect(r.tail.length).toBeLessThanOrEqual(4096);
      expect(r.tail).toContain('LAST-LINE');
    }, 120_000);

    it('a line without end and multi-byte characters at the cuts: the log stays bounded and valid UTF-8', async () => {
      const logFile = logPath();
      // 8 MiB of 'é' (2 bytes each) with no newline: no line boundary to cut on.
      const r = await runCommand({ command: `yes é | tr -d '\\n' | head -c ${8 * MIB}; echo; echo END`, cwd: dir, timeoutSec: 120, logFile, maxOutputBytes: 100_001 });
      expect(r.exitCode).toBe(0);
      const bytes = readFileSync(logFile);
      expect(bytes.length).toBeLessThanOrEqual(100_001 + 200);
      const log = bytes.toString('utf8');
      expect(Buffer.from(log, 'utf8').equals(bytes)).toBe(true); // nothing lost to U+FFFD: every cut fell between characters
      expect(log).toMatch(/^é+\n… [\d.]+ MiB of output dropped .* …\né+\nEND\n$/);
      expect(r.droppedBytes).toBeGreaterThan(7 * MIB);
    }, 120_000);

    it('output within the bound is kept whole, with no marker; the default bound is 16 MiB', async () => {
      const logFile = logPath();
      const r = await runCommand({ command: `yes 'noise line' | head -c ${2 * MIB}; echo END`, cwd: dir, timeoutSec: 60, logFile });
      expect(r.droppedBytes).toBe(0);
      expect(statSync(logFile).size).toBe(2 * MIB + 4);
      expect(readFileSync(logFile, 'utf8')).not.toContain('of output dropped');
      const exact = await runCommand({ command: `head -c ${MIB} /dev/zero | tr '\\0' x`, cwd: dir, timeoutSec: 60, logFile, maxOutputBytes: MIB });
      expect(exact.droppedBytes).toBe(0);
      expect(statSync(logFile).size).toBe(MIB);
    }, 60_000);
  });

  it('throws when the working directory is missing', async () => {
    await expect(run({ command: 'true', cwd: path.join(dir, 'missing') })).rejects.toThrow(/cannot run command/);
  });
});

describe('decodeTail', () => {
  it('drops a partial character at the start of a byte tail', () => {
    const bytes = Buffer.from('éa', 'utf8').subarray(1);
    expect(decodeTail(bytes)).toBe('a');
    expect(decodeTail(Buffer.from('plain'))).toBe('plain');
  });
});
