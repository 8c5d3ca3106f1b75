// The spawn helper's own code: a small Node process (a few MB of heap) that starts every child
// process for the worker, so the worker (hundreds of MB) never forks itself (issue 18 item 2:
// forking it blocked its event loop ≈ 0.4 s per task). It runs as `node -e HELPER_SCRIPT`, so
// nothing is loaded but Node's core; its protocol is the IPC channel (V8 serialization:
// buffers travel as they are):
//   worker → helper  {op:'spawn', id, file, args, cwd, env, detached, input, guard, records, pidMark}
//                    {op:'pause'|'resume', id, fd}   flow control of the child's stdout (1) / stderr (2)
//                    {op:'release', id}              the command's group is done with: stop guarding it
//                    {op:'exec', id, file, args, cwd, env, input, maxBuffer}   a buffered process
//                    {op:'kill', id}                 SIGTERM to a buffered process
//   helper → worker  {id, ev:'spawn', pid} | {id, ev:'error', code, message} | {id, ev:'data', fd, data}
//                    {id, ev:'exit', code, signal} | {id, ev:'close'}
//                    {id, ev:'done', code, signal, stdout, stderr, over}   a buffered process's end
// A buffered process (git, the sandbox's small tools) costs two messages: its output is kept here
// and sent with its end ('data' ahead only past EXEC_FLUSH bytes), killed past maxBuffer.
// Guarded groups (`guard`) die with the worker: when its end of the channel closes — a clean
// exit or `kill -9` — the helper SIGKILLs every group it still guards, then exits. That is the
// watchdog a `/bin/sh` beside each command used to be; its argv says `weaver-watchdog` so that
// the tools that look for watchdogs find it. With `records`, the group is recorded (pid and start
// time, the files' pidMark replaced by the pid) before "go" is written on the child's fd 3,
// where it waits: a worker and helper killed at any moment leave the group to their successor.
export const HELPER_ARGV_TAG = ['weaver-spawn-helper', 'weaver-watchdog'];

export const HELPER_SCRIPT = `'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');
function startTime(pid) {
  try { const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8'); return s.slice(s.lastIndexOf(')') + 2).split(' ')[19]; } catch { return ''; }
}
function record(m, pid) {
  for (const f of m.records) {
    const file = f.split(m.pidMark).join(String(pid));
    try { fs.mkdirSync(path.dirname(file), { recursive: true }); fs.writeFileSync(file, pid + ' ' + startTime(pid) + '\\n'); } catch {}
  }
}
const kids = new Map();
const guards = new Map();
const send = (m) => { if (process.connected) process.send(m, undefined, undefined, () => undefined); };
// The child started and known by its id, or undefined after an 'error' message (it could not start).
function launch(m, extraFds) {
  let child;
  try {
    child = spawn(m.file, m.args, { cwd: m.cwd, env: m.env, detached: !!m.detached, stdio: [m.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe', ...extraFds] });
  } catch (e) {
    send({ id: m.id, ev: 'error', code: e.code, message: e.message });
    return undefined;
  }
  child.on('error', (e) => { if (child.pid === undefined) send({ id: m.id, ev: 'error', code: e.code, message: e.message }); });
  if (child.pid === undefined) return undefined;
  kids.set(m.id, child);
  return child;
}
function start(m) {
  const child = launch(m, m.records ? ['pipe'] : []);
  if (!child) return;
  if (m.guard && m.detached) guards.set(m.id, child.pid);
  if (m.records) {
    record(m, child.pid);
    const gate = child.stdio[3];
    gate.on('error', () => undefined);
    gate.end('go\\n');
  }
  send({ id: m.id, ev: 'spawn', pid: child.pid });
  if (child.stdin) { child.stdin.on('error', () => undefined); child.stdin.end(m.input); }
  child.stdout.on('data', (data) => send({ id: m.id, ev: 'data', fd: 1, data }));
  child.stderr.on('data', (data) => send({ id: m.id, ev: 'data', fd: 2, data }));
  child.stdout.on('error', () => undefined);
  child.stderr.on('error', () => undefined);
  child.on('exit', (code, signal) => send({ id: m.id, ev: 'exit', code, signal }));
  child.on('close', () => { kids.delete(m.id); send({ id: m.id, ev: 'close' }); });
}
const EXEC_FLUSH = 1 << 20;
function exec(m) {
  const child = launch(m, []);
  if (!child) return;
  if (child.stdin) { child.stdin.on('error', () => undefined); child.stdin.end(m.input); }
  const kept = { 1: [], 2: [] };
  const held = { 1: 0, 2: 0 };
  const total = { 1: 0, 2: 0 };
  let over;
  const collect = (fd) => (data) => {
    total[fd] += data.length;
    if (total[fd] > m.maxBuffer) {
      if (over === undefined) { over = (fd === 1 ? 'stdout' : 'stderr') + ' maxBuffer length exceeded'; child.kill('SIGTERM'); }
      return;
    }
    kept[fd].push(data);
    held[fd] += data.length;
    if (held[fd] >= EXEC_FLUSH) { send({ id: m.id, ev: 'data', fd, data: Buffer.concat(kept[fd]) }); kept[fd] = []; held[fd] = 0; }
  };
  child.stdout.on('data', collect(1));
  child.stderr.on('data', collect(2));
  child.stdout.on('error', () => undefined);
  child.stderr.on('error', () => undefined);
  child.on('close', (code, signal) => {
    kids.delete(m.id);
    send({ id: m.id, ev: 'done', code, signal, stdout: Buffer.concat(kept[1]), stderr: Buffer.concat(kept[2]), over });
  });
}
process.on('message', (m) => {
  if (m.op === 'spawn') return start(m);
  if (m.op === 'exec') return exec(m);
  if (m.op === 'release') return guards.delete(m.id);
  const child = kids.get(m.id);
  if (child && m.op === 'kill') return child.kill('SIGTERM');
  const stream = child && (m.fd === 2 ? child.stderr : child.stdout);
  if (stream && m.op === 'pause') stream.pause();
  if (stream && m.op === 'resume') stream.resume();
});
process.on('disconnect', () => {
  for (const pgid of guards.values()) { try { process.kill(-pgid, 'SIGKILL'); } catch {} }
  process.exit(0);
});
`;
