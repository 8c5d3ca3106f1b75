import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { applyChangeSet, checkPathSyntax, validateChangePath } from '../src/activities/apply';
import type { ChangeSet, FileChange } from '../src/domain/schema';

let base: string;
let ws: string;
let outside: string;

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-apply-'));
  ws = path.join(base, 'ws');
  outside = path.join(base, 'outside');
  mkdirSync(path.join(ws, '.git', 'hooks'), { recursive: true });
  writeFileSync(path.join(ws, '.git', 'config'), '[core]\n');
  mkdirSync(path.join(ws, 'src'));
  writeFileSync(path.join(ws, 'src', 'a.ts'), 'export const a = 1;\n');
  writeFileSync(path.join(ws, 'README.md'), '# hi\n');
  mkdirSync(outside);
});

afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

const cs = (...files: FileChange[]): ChangeSet => ({ summary: 'test change', files });
const read = (rel: string) => readFileSync(path.join(ws, rel), 'utf8');

/** Every file under `dir` (relative), for "nothing was written" checks. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[path.relative(dir, p)] = '<symlink>';
      else if (st.isDirectory()) {
        out[`${path.relative(dir, p)}/`] = '<dir>';
        walk(p);
      } else out[path.relative(dir, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

describe('applyChangeSet: happy path', () => {
  it('creates, modifies and deletes files, creating parent directories', async () => {
    const r = await applyChangeSet(
      ws,
      cs(
        { path: 'src/new/deep/b.ts', action: 'create', content: 'export const b = 2;\n' },
        { path: 'src/a.ts', action: 'modify', content: 'export const a = 42;\n' },
        { path: 'README.md', action: 'delete' },
      ),
    );
    expect(r).toEqual({ applied: true, files: ['src/new/deep/b.ts', 'src/a.ts', 'README.md'], errors: [] });
    expect(read('src/new/deep/b.ts')).toBe('export const b = 2;\n');
    expect(read('src/a.ts')).toBe('export const a = 42;\n');
    expect(existsSync(path.join(ws, 'README.md'))).toBe(false);
  });

  it('allows create over an existing file and normalises ./ and // in paths', async () => {
    const r = await applyChangeSet(ws, cs({ path: './src//a.ts', action: 'create', content: 'replaced\n' }));
    expect(r.applied).toBe(true);
    expect(r.files).toEqual(['src/a.ts']);
    expect(read('src/a.ts')).toBe('replaced\n');
  });

  it('keeps the mode of a modified file (e.g. an executable script)', async () => {
    writeFileSync(path.join(ws, 'run.sh'), '#!/bin/sh\n');
    chmodSync(path.join(ws, 'run.sh'), 0o755);
    const r = await applyChangeSet(ws, cs({ path: 'run.sh', action: 'modify', content: '#!/bin/sh\necho hi\n' }));
    expect(r.applied).toBe(true);
    expect(statSync(path.join(ws, 'run.sh')).mode & 0o777).toBe(0o755);
  });

  it('accepts a symlinked directory that stays inside the workspace', async () => {
    symlinkSync(path.join(ws, 'src'), path.join(ws, 'srclink'));
    const r = await applyChangeSet(ws, cs({ path: 'srclink/c.ts', action: 'create', content: 'c\n' }));
    expect(r.errors).toEqual([]);
    expect(read('src/c.ts')).toBe('c\n');
  });

  it('does not write through a hard link shared with a file outside', async () => {
    writeFileSync(path.join(outside, 'shared.txt'), 'outside content\n');
    linkSync(path.join(outside, 'shared.txt'), path.join(ws, 'shared.txt'));
    const r = await applyChangeSet(ws, cs({ path: 'shared.txt', action: 'modify', content: 'new\n' }));
    expect(r.applied).toBe(true);
    expect(read('shared.txt')).toBe('new\n');
    expect(readFileSync(path.join(outside, 'shared.txt'), 'utf8')).toBe('outside content\n');
  });
});

describe('applyChangeSet: confinement', () => {
  const rejected: [string, RegExp][] = [
    ['../escape.txt', /\.\./],
    ['/etc/passwd', /absolute/],
    ['/tmp/weaver-abs.txt', /absolute/],
    ['C:\\Windows\\evil.txt', /absolute/],
    ['c:/evil.txt', /absolute/],
    ['\\\\server\\share\\x', /absolute/],
    ['a/../../x', /\.\./],
    ['a/../b.txt', /\.\./],
    ['src\\..\\..\\x', /\.\./],
    ['.git/config', /\.git/],
    ['.GIT/hooks/x', /\.git/],
    ['.git', /\.git/],
    ['sub/.Git/config', /\.git/],
    ['.git./config', /\.git/],
    ['', /^change set: files\.1\.path: /], // caught by the ChangeSet schema
    ['.', /does not name a file/],
    ['./', /directory/],
    ['src/', /directory/],
    ['a\0b', /NUL/],
    ['a\nb', /control/],
    ['src', /is a directory/],
  ];

  it.each(rejected)('rejects %j and writes nothing', async (bad, reason) => {
    const before = snapshot(base);
    const r = await applyChangeSet(
      ws,
      cs({ path: 'good.txt', action: 'create', content: 'good\n' }, { path: bad, action: 'create', content: 'evil\n' }),
    );
    expect(r.applied).toBe(false);
    expect(r.files).toEqual([]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(reason);
    expect(snapshot(base)).toEqual(before);
    expect(existsSync(path.join(ws, 'good.txt'))).toBe(false);
  });

  it('names the path in each error line and reports every bad path', async () => {
    const r = await applyChangeSet(
      ws,
      cs(
        { path: '../escape.txt', action: 'create', content: 'x' },
        { path: '.git/hooks/pre-commit', action: 'create', content: 'x' },
        { path: 'fine.txt', action: 'create', content: 'x' },
      ),
    );
    expect(r.applied).toBe(false);
    expect(r.errors).toHaveLength(2);
    expect(r.errors[0].startsWith('../escape.txt: ')).toBe(true);
    expect(r.errors[1].startsWith('.git/hooks/pre-commit: ')).toBe(true);
    expect(existsSync(path.join(ws, 'fine.txt'))).toBe(false);
    expect(existsSync(path.join(ws, '.git', 'hooks', 'pre-commit'))).toBe(false);
    expect(existsSync(path.join(base, 'escape.txt'))).toBe(false);
  });

  it('rejects writing through a symlink to a directory outside, writing nothing anywhere', async () => {
    symlinkSync(outside, path.join(ws, 'out'));
    const before = snapshot(base);
    const r = await applyChangeSet(
      ws,
      cs(
        { path: 'good.txt', action: 'create', content: 'good\n' },
        { path: 'src/a.ts', action: 'modify', content: 'changed\n' },
        { path: 'out/evil.txt', action: 'create', content: 'evil\n' },
        { path: 'out/nested/evil.txt', action: 'create', content: 'evil\n' },
      ),
    );
    expect(r.applied).toBe(false);
    expect(r.errors).toHaveLength(2);
    expect(r.errors[0]).toMatch(/^out\/evil\.txt: .*outside the workspace/);
    expect(r.errors[1]).toMatch(/^out\/nested\/evil\.txt: .*outside the workspace/);
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(path.join(ws, 'good.txt'))).toBe(false);
    expect(read('src/a.ts')).toBe('export const a = 1;\n');
    expect(snapshot(base)).toEqual(before);
  });

  it('rejects a symlink into .git', async () => {
    symlinkSync(path.join(ws, '.git'), path.join(ws, 'g'));
    const r = await applyChangeSet(ws, cs({ path: 'g/hooks/post-checkout', action: 'create', content: 'evil' }));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^g\/hooks\/post-checkout: .*\.git/);
    expect(existsSync(path.join(ws, '.git', 'hooks', 'post-checkout'))).toBe(false);
  });

  it('rejects writing to a path that is itself a symlink (even pointing inside)', async () => {
    symlinkSync(path.join(outside, 'target.txt'), path.join(ws, 'link.txt'));
    symlinkSync(path.join(ws, 'README.md'), path.join(ws, 'inner-link.md'));
    for (const p of ['link.txt', 'inner-link.md']) {
      for (const action of ['create', 'modify', 'delete'] as const) {
        const fc: FileChange = action === 'delete' ? { path: p, action } : { path: p, action, content: 'x' };
        const r = await applyChangeSet(ws, cs(fc));
        expect(r.applied).toBe(false);
        expect(r.errors[0]).toMatch(/symbolic link/);
      }
    }
    expect(existsSync(path.join(outside, 'target.txt'))).toBe(false);
    expect(read('README.md')).toBe('# hi\n');
    expect(lstatSync(path.join(ws, 'link.txt')).isSymbolicLink()).toBe(true);
  });

  it('rejects a dangling symlink as a parent directory', async () => {
    symlinkSync(path.join(outside, 'missing-dir'), path.join(ws, 'dangling'));
    const r = await applyChangeSet(ws, cs({ path: 'dangling/x.txt', action: 'create', content: 'x' }));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^dangling\/x\.txt: /);
    expect(existsSync(path.join(outside, 'missing-dir'))).toBe(false);
  });

  it('works when the workspace path itself goes through a symlink', async () => {
    const alias = path.join(base, 'alias');
    symlinkSync(ws, alias);
    const r = await applyChangeSet(alias, cs({ path: 'via-alias.txt', action: 'create', content: 'ok\n' }));
    expect(r.applied).toBe(true);
    expect(read('via-alias.txt')).toBe('ok\n');
  });
});

describe('applyChangeSet: missing files and conflicts', () => {
  it('modify of a missing file is an error and nothing is written', async () => {
    const r = await applyChangeSet(
      ws,
      cs({ path: 'good.txt', action: 'create', content: 'good\n' }, { path: 'src/missing.ts', action: 'modify', content: 'x' }),
    );
    expect(r.applied).toBe(false);
    expect(r.errors).toEqual(['src/missing.ts: cannot modify: file does not exist']);
    expect(existsSync(path.join(ws, 'good.txt'))).toBe(false);
    expect(existsSync(path.join(ws, 'src', 'missing.ts'))).toBe(false);
  });

  it('delete of a missing file is an error', async () => {
    const r = await applyChangeSet(ws, cs({ path: 'nope.txt', action: 'delete' }));
    expect(r.applied).toBe(false);
    expect(r.errors).toEqual(['nope.txt: cannot delete: file does not exist']);
  });

  it('rejects a path whose parent is a file', async () => {
    const r = await applyChangeSet(ws, cs({ path: 'README.md/x.txt', action: 'create', content: 'x' }));
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^README\.md\/x\.txt: README\.md is a file/);
    expect(read('README.md')).toBe('# hi\n');
  });

  it('rejects the same file twice and a file that is also a directory of another', async () => {
    const r1 = await applyChangeSet(
      ws,
      cs({ path: 'x.txt', action: 'create', content: '1' }, { path: './x.txt', action: 'create', content: '2' }),
    );
    expect(r1.applied).toBe(false);
    expect(r1.errors[0]).toMatch(/^\.\/x\.txt: appears more than once/);
    const r2 = await applyChangeSet(
      ws,
      cs({ path: 'd', action: 'create', content: '1' }, { path: 'd/e.txt', action: 'create', content: '2' }),
    );
    expect(r2.applied).toBe(false);
    expect(r2.errors[0]).toMatch(/^d\/e\.txt: conflicts with d/);
    expect(existsSync(path.join(ws, 'x.txt'))).toBe(false);
    expect(existsSync(path.join(ws, 'd'))).toBe(false);
  });

  it('rejects a malformed change set', async () => {
    const r = await applyChangeSet(ws, { summary: 'x', files: [{ path: 'a.txt', action: 'rename' }] } as unknown as ChangeSet);
    expect(r.applied).toBe(false);
    expect(r.errors[0]).toMatch(/^change set: files\.0/);
  });

  it('rolls back what it wrote if a write fails midway', async () => {
    // A name longer than NAME_MAX under a directory that does not exist yet passes validation
    // (the lookup stops at the missing directory with ENOENT) and fails at open() with
    // ENAMETOOLONG — a real write failure even as root, after two writes and a mkdir.
    const tooLong = `${'x'.repeat(300)}.txt`;
    const r = await applyChangeSet(
      ws,
      cs(
        { path: 'src/a.ts', action: 'modify', content: 'changed\n' },
        { path: 'newdir/created.txt', action: 'create', content: 'new\n' },
        { path: `newdir2/${tooLong}`, action: 'create', content: 'x' },
      ),
    );
    expect(r.applied).toBe(false);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain('newdir2/');
    expect(read('src/a.ts')).toBe('export const a = 1;\n');
    expect(existsSync(path.join(ws, 'newdir'))).toBe(false);
    expect(existsSync(path.join(ws, 'newdir2'))).toBe(false);
  });
});

describe('validateChangePath / checkPathSyntax', () => {
  it('returns the canonical relative and absolute path for a good path', async () => {
    const r = await validateChangePath(ws, 'src/./a.ts');
    expect(r).toEqual({ ok: true, rel: 'src/a.ts', abs: path.join(ws, 'src', 'a.ts'), exists: true });
    const n = await validateChangePath(ws, 'src/new.ts');
    expect(n).toMatchObject({ ok: true, rel: 'src/new.ts', exists: false });
  });

  it('rejects without touching the disk', () => {
    expect(checkPathSyntax('../x')).toMatchObject({ ok: false });
    expect(checkPathSyntax('.gitignore')).toEqual({ ok: true, rel: '.gitignore' });
    expect(checkPathSyntax('.github/workflows/ci.yml')).toEqual({ ok: true, rel: '.github/workflows/ci.yml' });
    expect(checkPathSyntax(42)).toMatchObject({ ok: false });
    expect(checkPathSyntax('')).toEqual({ ok: false, reason: 'path is empty' });
    expect(checkPathSyntax('a/b/../c')).toMatchObject({ ok: false, reason: expect.stringMatching(/\.\./) });
  });

  it('throws when the workspace itself does not exist', async () => {
    await expect(validateChangePath(path.join(base, 'nope'), 'a.txt')).rejects.toThrow(/ENOENT/);
    await expect(applyChangeSet(path.join(base, 'nope'), cs({ path: 'a.txt', action: 'create', content: '' }))).rejects.toThrow();
  });
});
