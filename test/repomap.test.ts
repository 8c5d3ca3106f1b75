// The repository map (issue 7, item 4) on real git repositories in temp dirs: tree-sitter
// definitions per language, ranking personalised by what a task names, the token budget,
// .weaverignore, the content-addressed tag cache, robustness to broken files, worker threads,
// PageRank against independent computations, and mentions in tracebacks / jest output.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Graph from 'graphology';
import pagerank from 'graphology-metrics/centrality/pagerank';
import { Language, Parser, Query } from 'web-tree-sitter';
import { buildRepoMap, clearTagCacheMemory, extractMentions, type RepoMap, type RepoMapRequest } from '../src/activities/repomap';
import { TagCache } from '../src/activities/repomap/cache';
import { closeTagPool, createTagger, tagCounters, taggerOptions } from '../src/activities/repomap/extract';
import { LANGS, langOf } from '../src/activities/repomap/languages';
import { personalizedPageRank, toCsr } from '../src/activities/repomap/rank';
import { countTokens } from '../src/activities/tokens';

let base: string;
const savedWorkers = process.env.WEAVER_REPOMAP_WORKERS;

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'weaver-repomap-'));
});
afterEach(() => {
  rmSync(base, { recursive: true, force: true });
  if (savedWorkers === undefined) delete process.env.WEAVER_REPOMAP_WORKERS;
  else process.env.WEAVER_REPOMAP_WORKERS = savedWorkers;
});

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { encoding: 'utf8' });
}

/** A committed git repository holding `files` (path → content). */
function makeRepo(name: string, files: Record<string, string>): string {
  const dir = path.join(base, name);
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), content);
  }
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'init');
  return dir;
}

function req(dir: string, extra: Partial<RepoMapRequest> = {}): RepoMapRequest {
  return { dir, cacheDir: path.join(base, 'cache'), mentionedFiles: [], mentionedIdents: [], tokenBudget: 1024, ...extra };
}

const position = (map: RepoMap, rel: string) => map.ranked.findIndex((r) => r.path === rel);
const defsOf = (map: RepoMap, rel: string) => map.ranked.find((r) => r.path === rel)?.defs ?? [];

// ---------------------------------------------------------------------------------------------
// One small file per language.

const SOURCES: Record<string, string> = {
  'py/app.py': `import os
from pkg.util import helper_fn

MAX_SIZE = 10


class Config(Base):
    retries = 3

    @property
    def path(self):
        return helper_fn(self.x)

    def parse_config(self, text):
        return Loader(text).load_all()


def top_level(x):
    return x
`,
  'ts/shapes.ts': `import { readThing } from './things';
export interface Shape { area(): number }
export type Id = string | number;
export enum Color { Red, Green }
export abstract class Base<T> extends Root implements Shape {
  abstract area(): number;
  constructor() { super(); }
  compute(x: Id): Shape { return makeShape(x); }
}
export function makeShape(id: Id): Shape { return new Circle(readThing(id)); }
export const doubleIt = async (a: number) => a * 2;
`,
  'ts/App.tsx': `import React from 'react';

export function App(props: Props) {
  return <Panel title="x"><Label /></Panel>;
}
`,
  'js/widget.jsx': `const React = require('react');
class Widget extends React.Component {
  render() { return <Panel.Body><Label text="x" /></Panel.Body>; }
}
function helper() { return fetchData(); }
`,
  'js/esm.mjs': `export function fromEsm(a) {\n  return a;\n}\n`,
  'js/common.cjs': `function fromCommon() {}\nmodule.exports.exportedFn = function () { fromCommon(); };\n`,
  'js/plain.js': `export default class Store {\n  load(key) { return key; }\n}\n`,
  'go/server.go': `package main

import "fmt"

const Limit = 3

var global = 1

type Server struct{ name string }

type Handler interface {
	Serve(r Request) error
}

func NewServer(name string) *Server {
	return &Server{name: name}
}

func (s *Server) Start() error {
	fmt.Println(s.name)
	return nil
}
`,
  'rs/lib.rs': `use std::fmt::Display;

pub struct Point { x: i32 }

pub enum Shape { Circle, Square }

pub trait Draw {
    fn draw(&self);
}

impl Draw for Point {
    fn draw(&self) {
        println!("{}", self.x);
    }
}

pub fn make_point() -> Point {
    Point { x: 1 }
}

macro_rules! square { ($x:expr) => { $x * $x }; }
`,
  'java/Repo.java': `package a.b;

import java.util.List;

public class Repo extends BaseRepo implements Store {
    private int x;

    public Repo() {}

    public List<Item> findAll(Query q) {
        return helper.load(new Item(), q);
    }

    interface Listener { void onEvent(Event e); }

    enum Kind { A, B }
}
`,
  'c/list.c': `#include <stdio.h>
#define MAX 10

typedef struct node { int v; } node_t;

struct list { node_t *head; };

static int helper(int x);

char *dup_string(const char *s) {
    return strdup(s);
}

int main(void) {
    return helper(MAX);
}
`,
  'cpp/shape.cpp': `#include "shape.h"
namespace geo {
class Shape {
 public:
  virtual double area() const;
};

double Shape::area() const { return 1.0; }

template <typename T>
T identity(T x) { return x; }
}
`,
};

/** [file, name, kind, line, endLine?] */
const EXPECTED: [string, string, string, number, number?][] = [
  ['py/app.py', 'MAX_SIZE', 'constant', 4],
  ['py/app.py', 'Config', 'class', 7, 15],
  ['py/app.py', 'path', 'method', 11],
  ['py/app.py', 'parse_config', 'method', 14, 15],
  ['py/app.py', 'top_level', 'function', 18, 19],
  ['ts/shapes.ts', 'Shape', 'interface', 2],
  ['ts/shapes.ts', 'Id', 'type', 3],
  ['ts/shapes.ts', 'Color', 'enum', 4],
  ['ts/shapes.ts', 'Base', 'class', 5, 9],
  ['ts/shapes.ts', 'compute', 'method', 8],
  ['ts/shapes.ts', 'makeShape', 'function', 10],
  ['ts/shapes.ts', 'doubleIt', 'function', 11],
  ['ts/App.tsx', 'App', 'function', 3, 5],
  ['js/widget.jsx', 'Widget', 'class', 2, 4],
  ['js/widget.jsx', 'render', 'method', 3],
  ['js/widget.jsx', 'helper', 'function', 5],
  ['js/esm.mjs', 'fromEsm', 'function', 1, 3],
  ['js/common.cjs', 'fromCommon', 'function', 1],
  ['js/common.cjs', 'exportedFn', 'function', 2],
  ['js/plain.js', 'Store', 'class', 1, 3],
  ['js/plain.js', 'load', 'method', 2],
  ['go/server.go', 'Limit', 'constant', 5],
  ['go/server.go', 'Server', 'type', 9],
  ['go/server.go', 'Handler', 'type', 11, 13],
  ['go/server.go', 'Serve', 'method', 12],
  ['go/server.go', 'NewServer', 'function', 15, 17],
  ['go/server.go', 'Start', 'method', 19, 22],
  ['rs/lib.rs', 'Point', 'class', 3],
  ['rs/lib.rs', 'Shape', 'class', 5],
  ['rs/lib.rs', 'Draw', 'interface', 7, 9],
  ['rs/lib.rs', 'draw', 'method', 12, 14],
  ['rs/lib.rs', 'make_point', 'function', 17, 19],
  ['rs/lib.rs', 'square', 'macro', 21],
  ['java/Repo.java', 'Repo', 'class', 5, 17],
  ['java/Repo.java', 'findAll', 'method', 10, 12],
  ['java/Repo.java', 'Listener', 'interface', 14],
  ['java/Repo.java', 'onEvent', 'method', 14],
  ['java/Repo.java', 'Kind', 'enum', 16],
  ['c/list.c', 'MAX', 'macro', 2],
  ['c/list.c', 'node_t', 'type', 4],
  ['c/list.c', 'list', 'struct', 6],
  ['c/list.c', 'helper', 'function', 8],
  ['c/list.c', 'dup_string', 'function', 10, 12],
  ['c/list.c', 'main', 'function', 14, 16],
  ['cpp/shape.cpp', 'geo', 'module', 2, 12],
  ['cpp/shape.cpp', 'Shape', 'class', 3, 6],
  ['cpp/shape.cpp', 'area', 'method', 5],
  ['cpp/shape.cpp', 'area', 'method', 8],
  ['cpp/shape.cpp', 'identity', 'function', 11],
];

describe('definitions per language', () => {
  test('every tag query compiles against its grammar', async () => {
    await Parser.init();
    const opts = taggerOptions();
    for (const [lang, spec] of Object.entries(LANGS)) {
      const language = await Language.load(readFileSync(path.join(opts.wasmDir, spec.wasm)));
      let error = '';
      try {
        new Query(language, spec.query).delete();
      } catch (e) {
        error = String(e);
      }
      expect({ lang, error }).toEqual({ lang, error: '' });
      // A query naming a node type the grammar lacks does throw (so the check above can fail).
      expect(() => new Query(language, '(no_such_node_type) @x')).toThrow();
    }
  });

  test('extensions map to languages', () => {
    expect(['a.py', 'a.js', 'a.jsx', 'a.mjs', 'a.cjs', 'a.ts', 'a.tsx', 'a.go', 'a.rs', 'A.java', 'a.c', 'a.h', 'a.cc', 'a.cpp', 'a.hpp'].map(langOf)).toEqual([
      'python',
      'javascript',
      'javascript',
      'javascript',
      'javascript',
      'typescript',
      'tsx',
      'go',
      'rust',
      'java',
      'c',
      'cpp',
      'cpp',
      'cpp',
      'cpp',
    ]);
    expect(langOf('README.md')).toBeUndefined();
    expect(langOf('Makefile')).toBeUndefined();
  });

  test('names, kinds and lines of definitions in Python, JS (.js/.jsx/.mjs/.cjs), TS, TSX, Go, Rust, Java, C, C++', async () => {
    process.env.WEAVER_REPOMAP_WORKERS = '0';
    const dir = makeRepo('langs', SOURCES);
    const map = await buildRepoMap(req(dir, { tokenBudget: 4000 }));
    expect(map.stats.files).toBe(Object.keys(SOURCES).length);
    expect(map.stats.parsed).toBe(map.stats.files);
    for (const [file, name, kind, line, endLine] of EXPECTED) {
      const defs = defsOf(map, file).filter((d) => d.name === name && d.line === line);
      expect({ file, name, line, found: defs.length }).toEqual({ file, name, line, found: 1 });
      expect({ file, name, kind: defs[0].kind }).toEqual({ file, name, kind });
      if (endLine !== undefined) expect({ file, name, endLine: defs[0].endLine }).toEqual({ file, name, endLine });
    }
    // Not definitions: constructors, calls, references.
    expect(defsOf(map, 'ts/shapes.ts').map((d) => d.name)).not.toContain('constructor');
    expect(defsOf(map, 'py/app.py').map((d) => d.name)).not.toContain('helper_fn');
  });

  test('the outline shows the path, numbered definition lines, the enclosing class and ⋮ for elided lines', async () => {
    process.env.WEAVER_REPOMAP_WORKERS = '0';
    const dir = makeRepo('outline', { 'py/app.py': SOURCES['py/app.py'] });
    const map = await buildRepoMap(req(dir, { mentionedIdents: ['parse_config'], tokenBudget: 4000 }));
    const lines = map.text.split('\n');
    expect(lines[0]).toBe('py/app.py:');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const cls = at(/^ {3}7│class Config\(Base\):$/);
    const meth = at(/^ {2}14│ {4}def parse_config\(self, text\):$/);
    expect(cls).toBeGreaterThan(0);
    expect(meth).toBeGreaterThan(cls);
    expect(lines.slice(cls + 1, meth)).toContain('⋮');
    expect(lines[1]).toBe('⋮'); // lines 1-3 elided
  });
});

// ---------------------------------------------------------------------------------------------
// A generated repository of 500+ Python files.

const MODULES = 520;
/** Module i calls handler_(7i+3 mod N) and handler_(13i+5 mod N), and the two hub modules. */
const callee = (i: number, k: 0 | 1) => (k === 0 ? (7 * i + 3) % MODULES : (13 * i + 5) % MODULES);
const mod = (i: number) => `app/m${String(i).padStart(3, '0')}.py`;

function generatedRepo(name: string, extra: Record<string, string> = {}): string {
  const files: Record<string, string> = {
    'core/util.py': `def format_amount(value):\n    return f"{value:.2f}"\n\n\ndef log_event(name, **fields):\n    print(name, fields)\n`,
    'core/models.py': `class Record:\n    def __init__(self, **kw):\n        self.kw = kw\n\n    def get_field(self, key):\n        return self.kw[key]\n`,
    'billing/invoice_tools.py': [
      'from core.util import format_amount',
      '',
      '',
      'def parse_line_item(text):',
      '    """Parse one invoice line: "<qty> x <price>"."""',
      '    qty, price = text.split(" x ")',
      '    return int(qty), float(price)',
      '',
      '',
      'def compute_invoice_total(items):',
      '    """Sum quantity * price over the invoice lines, formatted with format_amount."""',
      '    raise NotImplementedError',
      '',
    ].join('\n'),
    'billing/report.py': `from billing.invoice_tools import compute_invoice_total\n\n\ndef render_report(items):\n    return compute_invoice_total(items)\n`,
  };
  for (let i = 0; i < MODULES; i++) {
    const [a, b] = [callee(i, 0), callee(i, 1)];
    files[mod(i)] = [
      'from core.util import format_amount, log_event',
      'from core.models import Record',
      `from app.m${String(a).padStart(3, '0')} import handler_${a}`,
      `from app.m${String(b).padStart(3, '0')} import handler_${b}`,
      '',
      '',
      `class Widget${i}(Record):`,
      `    def describe_${i}(self):`,
      `        return format_amount(self.get_field("price"))`,
      '',
      '',
      `def handler_${i}(event):`,
      `    log_event("handler_${i}", event=event)`,
      `    return handler_${a}(event) or handler_${b}(event)`,
      '',
      '',
      `def helper_${i}(value):`,
      `    return Record(value=format_amount(value))`,
      '',
    ].join('\n');
  }
  return makeRepo(name, { ...files, ...extra });
}

describe('ranking on a generated repository of 500+ files', () => {
  test('a task naming a function: its file ranks in the top 3 and its definition line is in the map text', async () => {
    const dir = generatedRepo('gen');
    const tracked = git(dir, 'ls-files').trim().split('\n');
    expect(tracked.length).toBeGreaterThanOrEqual(500);
    const task = 'Implement compute_invoice_total: it must sum quantity times price over the invoice lines.';
    const mentions = extractMentions(task, tracked);
    expect(mentions.idents).toContain('compute_invoice_total');

    const plain = await buildRepoMap(req(dir));
    // Without the task, the hubs lead and the invoice file is nowhere near the top.
    expect(plain.ranked.slice(0, 2).map((r) => r.path).sort()).toEqual(['core/models.py', 'core/util.py']);
    expect(position(plain, 'billing/invoice_tools.py')).toBeGreaterThan(2);

    const map = await buildRepoMap(req(dir, { mentionedFiles: mentions.paths, mentionedIdents: mentions.idents }));
    expect(position(map, 'billing/invoice_tools.py')).toBeGreaterThanOrEqual(0);
    expect(position(map, 'billing/invoice_tools.py')).toBeLessThan(3);
    expect(map.text).toMatch(/^ {2}10│def compute_invoice_total\(items\):$/m);
    expect(defsOf(map, 'billing/invoice_tools.py')[0]).toEqual({ name: 'compute_invoice_total', kind: 'function', line: 10, endLine: 12 });
    expect(map.tokens).toBeLessThanOrEqual(1024);
  });

  test('personalisation by a mentioned file lifts what that file references', async () => {
    const dir = generatedRepo('gen');
    const named = mod(10);
    const target = mod(callee(10, 0));
    const plain = await buildRepoMap(req(dir));
    const personal = await buildRepoMap(req(dir, { mentionedFiles: [named] }));
    expect(personal.ranked.map((r) => r.path)).not.toEqual(plain.ranked.map((r) => r.path));
    expect(position(personal, named)).toBeLessThan(position(plain, named));
    expect(position(personal, target)).toBeLessThan(position(plain, target));
    expect(position(personal, target)).toBeLessThan(10);
    expect(personal.text).toContain(`${target}:`);
    expect(personal.text).toMatch(new RegExp(`│def handler_${callee(10, 0)}\\(event\\):`));
  });

  test('the map text stays within the token budget, and grows with it', async () => {
    const dir = generatedRepo('gen');
    let previous = 0;
    for (const budget of [40, 200, 1000, 3000]) {
      const map = await buildRepoMap(req(dir, { tokenBudget: budget }));
      expect(map.tokens).toBe(countTokens(map.text));
      expect(map.tokens).toBeLessThanOrEqual(budget);
      expect(map.tokens).toBeGreaterThan(previous);
      if (budget >= 200) expect(map.tokens).toBeGreaterThan(budget * 0.6); // the fit uses most of the budget
      previous = map.tokens;
    }
    const none = await buildRepoMap(req(dir, { tokenBudget: 0 }));
    expect(none.text).toBe('');
    expect(none.tokens).toBe(0);
    expect(none.ranked.length).toBeGreaterThan(500);
  });

  test('shown files are ranked but left out of the text', async () => {
    const dir = generatedRepo('gen');
    const map = await buildRepoMap(req(dir, { shownFiles: ['core/util.py', './core/models.py'] }));
    expect(map.ranked.slice(0, 2).map((r) => r.path).sort()).toEqual(['core/models.py', 'core/util.py']);
    expect(map.text).not.toContain('core/util.py:');
    expect(map.text).not.toContain('core/models.py:');
    expect(map.text).toMatch(/^app\/m\d{3}\.py:$/m);
  });

  test('two builds of one repository at once parse each file once (the second waits for the first one’s parses)', async () => {
    const dir = generatedRepo('gen');
    const [a, b] = await Promise.all([buildRepoMap(req(dir, { cacheDir: path.join(base, 'cache-1') })), buildRepoMap(req(dir, { cacheDir: path.join(base, 'cache-2') }))]);
    expect(a.stats.parsed + b.stats.parsed).toBe(a.stats.files);
    expect(a.stats.parsed + a.stats.fromCache).toBe(a.stats.files);
    expect(b.stats.parsed + b.stats.fromCache).toBe(b.stats.files);
    expect(b.text).toBe(a.text);
    expect(b.ranked).toEqual(a.ranked);
    // Each cache directory got every file's tags.
    clearTagCacheMemory();
    for (const cacheDir of ['cache-1', 'cache-2']) expect((await buildRepoMap(req(dir, { cacheDir: path.join(base, cacheDir) }))).stats.fromCache).toBe(a.stats.files);
  });

  test('worker threads and the main thread give the same map (a cold build of 500+ files uses workers, kept for the next build)', async () => {
    const dir = generatedRepo('gen');
    process.env.WEAVER_REPOMAP_WORKERS = '0';
    const inProcess = await buildRepoMap(req(dir, { cacheDir: path.join(base, 'cache-a'), mentionedIdents: ['compute_invoice_total'] }));
    process.env.WEAVER_REPOMAP_WORKERS = '2';
    await closeTagPool(); // threads an earlier test started
    const before = { ...tagCounters };
    const threaded = await buildRepoMap(req(dir, { cacheDir: path.join(base, 'cache-b'), mentionedIdents: ['compute_invoice_total'] }));
    expect(threaded.stats.parsed).toBe(threaded.stats.files);
    expect(threaded.stats.fromCache).toBe(0);
    expect(tagCounters.workersStarted - before.workersStarted).toBe(2);
    expect(tagCounters.inWorkers - before.inWorkers).toBe(threaded.stats.files);
    expect(tagCounters.inProcess - before.inProcess).toBe(0);
    expect(tagCounters.workerFailures - before.workerFailures).toBe(0);
    expect(threaded.text).toBe(inProcess.text);
    expect(threaded.ranked).toEqual(inProcess.ranked);
    // Another cold build (an empty cache) runs on the same threads: none started.
    const again = await buildRepoMap(req(dir, { cacheDir: path.join(base, 'cache-c'), mentionedIdents: ['compute_invoice_total'] }));
    expect(again.stats.parsed).toBe(again.stats.files);
    expect(tagCounters.workersStarted - before.workersStarted).toBe(2);
    expect(tagCounters.inWorkers - before.inWorkers).toBe(2 * again.stats.files);
    expect(again.text).toBe(inProcess.text);
  });
});

// ---------------------------------------------------------------------------------------------

describe('files, cache and robustness', () => {
  test('.weaverignore (gitignore syntax) and vendored/generated/minified files are left out', async () => {
    const dir = makeRepo('ignore', {
      '.weaverignore': '# not for the model\ngenerated/\n*.skip.py\n!keep.skip.py\n',
      'src/main.py': 'def main():\n    pass\n',
      'generated/schema.py': 'def generated_thing():\n    pass\n',
      'src/old.skip.py': 'def skipped_thing():\n    pass\n',
      'src/keep.skip.py': 'def kept_thing():\n    pass\n',
      'node_modules/dep/index.js': 'function depThing() {}\n',
      'vendor/lib.go': 'package lib\nfunc VendorThing() {}\n',
      'dist/bundle.js': 'function distThing() {}\n',
      'web/app.min.js': 'function minThing(){}\n',
      'docs/readme.md': '# docs\n',
    });
    const map = await buildRepoMap(req(dir));
    expect(map.ranked.map((r) => r.path).sort()).toEqual(['src/keep.skip.py', 'src/main.py']);
    expect(map.stats.files).toBe(2);
  });

  test('a second build reads every file from the cache and gives the same map; so does another clone', async () => {
    const dir = generatedRepo('gen');
    const r = req(dir, { mentionedIdents: ['compute_invoice_total'] });
    const first = await buildRepoMap(r);
    expect(first.stats.parsed).toBe(first.stats.files);
    expect(first.stats.fromCache).toBe(0);
    const second = await buildRepoMap(r);
    expect(second.stats.fromCache).toBe(first.stats.parsed);
    expect(second.stats.parsed).toBe(0);
    expect(second.text).toBe(first.text);
    expect(second.ranked).toEqual(first.ranked);

    // Read back from disk (as another worker process would), and from another checkout.
    clearTagCacheMemory();
    const clone = path.join(base, 'clone');
    execFileSync('git', ['clone', '-q', dir, clone]);
    const third = await buildRepoMap({ ...r, dir: clone });
    expect(third.stats.fromCache).toBe(first.stats.parsed);
    expect(third.stats.parsed).toBe(0);
    expect(third.text).toBe(first.text);
    expect(readdirSync(path.join(base, 'cache')).length).toBe(1);
  });

  test('cache segments from many writers are merged, and nothing written is lost', async () => {
    const cacheDir = path.join(base, 'cache');
    const tags = (k: number) => ({ d: [[`f${k}`, 'function', k + 1, k + 2]] as [string, string, number, number][], r: [] as [string, number][] });
    // 14 writers (as 14 processes would: nothing remembered between them), two at a time.
    for (let k = 0; k < 14; k += 2) {
      clearTagCacheMemory();
      const [a, b] = await Promise.all([TagCache.open(cacheDir), TagCache.open(cacheDir)]);
      a.put(`python:${k}`, tags(k));
      b.put(`python:${k + 1}`, tags(k + 1));
      await Promise.all([a.flush(), b.flush()]);
    }
    const [version] = readdirSync(cacheDir);
    const segments = readdirSync(path.join(cacheDir, version)).filter((n) => n.startsWith('seg-'));
    expect(segments.length).toBeLessThanOrEqual(12);
    expect(readdirSync(path.join(cacheDir, version)).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    clearTagCacheMemory();
    const reader = await TagCache.open(cacheDir);
    for (let k = 0; k < 14; k++) expect(reader.get(`python:${k}`)).toEqual(tags(k));
  });

  test('a file changed in the work tree is mapped as it is now, not as committed', async () => {
    const dir = makeRepo('dirty', { 'a.py': 'def old_name():\n    pass\n', 'b.py': 'def other():\n    pass\n' });
    const before = await buildRepoMap(req(dir));
    expect(defsOf(before, 'a.py').map((d) => d.name)).toEqual(['old_name']);
    writeFileSync(path.join(dir, 'a.py'), '\n\ndef new_name():\n    pass\n');
    const after = await buildRepoMap(req(dir));
    expect(defsOf(after, 'a.py')).toEqual([{ name: 'new_name', kind: 'function', line: 3, endLine: 4 }]);
    expect(after.stats.parsed).toBe(1); // b.py from the cache
    expect(after.stats.fromCache).toBe(1);
  });

  test('syntax errors, binary content and deleted files do not break the map', async () => {
    const dir = makeRepo('broken', {
      'good.py': 'def fine_function():\n    return 1\n',
      'bad.py': 'def broken(:\n    return ((\nclass \n',
      'bad.ts': 'export function half(x: number { return x / 2; }\n}}}} const = ;\n',
      'blob.js': Buffer.from([0x66, 0x00, 0x01, 0x02, 0x00, 0x7b]).toString('latin1'),
      'gone.go': 'package gone\nfunc Gone() {}\n',
    });
    rmSync(path.join(dir, 'gone.go'));
    const map = await buildRepoMap(req(dir, { tokenBudget: 500 }));
    expect(defsOf(map, 'good.py').map((d) => d.name)).toEqual(['fine_function']);
    expect(map.ranked.map((r) => r.path)).not.toContain('blob.js');
    expect(map.ranked.map((r) => r.path)).not.toContain('gone.go');
    expect(map.text).toContain('good.py:');
  });

  test('a grammar that fails to load skips its language with one warning', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const tagger = createTagger({ ...taggerOptions(), wasmDir: path.join(base, 'no-grammars') });
      expect(await tagger.tagSource('def f():\n  pass\n', 'python')).toEqual({ error: 'no grammar for python' });
      expect(await tagger.tagSource('def g():\n  pass\n', 'python')).toEqual({ error: 'no grammar for python' });
      const warnings = tagger.takeWarnings();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/grammar for python unavailable/);
      // Other languages are unaffected in a working tagger.
      const ok = createTagger(taggerOptions());
      expect(await ok.tagSource('def f():\n  pass\n', 'python')).toEqual({ tags: { d: [['f', 'function', 1, 2]], r: [] } });
    } finally {
      warn.mockRestore();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('personalised PageRank', () => {
  /** A deterministic pseudo-random graph with dangling nodes and self-loops. */
  function randomEdges(n: number, seed: number): [number, number, number][] {
    let s = seed;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    const edges: [number, number, number][] = [];
    for (let u = 0; u < n; u++) {
      if (u % 5 === 4) continue; // dangling
      for (let k = 0; k < 3; k++) edges.push([u, Math.floor(rnd() * n), 0.1 + rnd() * 5]);
    }
    return edges;
  }

  test('uniform personalisation equals graphology-metrics pagerank', () => {
    const n = 40;
    const edges = randomEdges(n, 7);
    const g = new Graph({ type: 'directed', multi: false, allowSelfLoops: true });
    for (let i = 0; i < n; i++) g.addNode(String(i));
    for (const [u, v, w] of edges) {
      const key = `${u}->${v}`;
      if (g.hasEdge(key)) g.updateEdgeAttribute(key, 'weight', (x) => (x as number) + w);
      else g.addDirectedEdgeWithKey(key, String(u), String(v), { weight: w });
    }
    const expected = pagerank(g, { getEdgeWeight: 'weight', tolerance: 1e-12, maxIterations: 1000 });
    const got = personalizedPageRank(toCsr(n, edges), undefined, { tolerance: 1e-14, maxIterations: 1000 });
    for (let i = 0; i < n; i++) expect(got[i]).toBeCloseTo(expected[String(i)], 8);
  });

  test('with a personalisation vector it solves x = d·(Wᵀx + dangling·p) + (1-d)·p (checked by Gaussian elimination)', () => {
    const n = 12;
    const d = 0.85;
    const edges = randomEdges(n, 11);
    const p = Array.from({ length: n }, (_, i) => (i === 3 ? 5 : i === 8 ? 1 : 0));
    const ps = p.map((v) => v / 6);
    // (I - d·Wᵀ - d·p·danglingᵀ) x = (1-d)·p
    const out = new Array(n).fill(0);
    for (const [u, , w] of edges) out[u] += w;
    const A = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
    for (const [u, v, w] of edges) A[v][u] -= (d * w) / out[u];
    for (let u = 0; u < n; u++) if (out[u] === 0) for (let v = 0; v < n; v++) A[v][u] -= d * ps[v];
    const b = ps.map((v) => (1 - d) * v);
    for (let c = 0; c < n; c++) {
      let piv = c;
      for (let r = c + 1; r < n; r++) if (Math.abs(A[r][c]) > Math.abs(A[piv][c])) piv = r;
      [A[c], A[piv]] = [A[piv], A[c]];
      [b[c], b[piv]] = [b[piv], b[c]];
      for (let r = 0; r < n; r++) {
        if (r === c) continue;
        const f = A[r][c] / A[c][c];
        for (let k = c; k < n; k++) A[r][k] -= f * A[c][k];
        b[r] -= f * b[c];
      }
    }
    const exact = b.map((v, i) => v / A[i][i]);
    const got = personalizedPageRank(toCsr(n, edges), p, { damping: d, tolerance: 1e-14, maxIterations: 2000 });
    expect(got.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 10);
    for (let i = 0; i < n; i++) expect(got[i]).toBeCloseTo(exact[i], 9);
    // Personalisation matters: node 3 gets more than under a uniform vector.
    const uniform = personalizedPageRank(toCsr(n, edges), undefined, { damping: d, tolerance: 1e-14, maxIterations: 2000 });
    expect(got[3]).toBeGreaterThan(uniform[3]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('extractMentions', () => {
  const known = ['pkg/parser.py', 'pkg/__init__.py', 'tests/test_parser.py', 'src/math.js', 'test/math.test.js', 'src/index.js', 'lib/index.js', 'web/index.js', 'docs/index.js'];

  test('a Python traceback: the repository paths (absolute in the trace) and the functions', () => {
    const trace = `Traceback (most recent call last):
  File "/tmp/weaver/ws/abc/repo/tests/test_parser.py", line 12, in test_parse_sections
    result = parse_config("a.toml")
  File "/tmp/weaver/ws/abc/repo/pkg/parser.py", line 42, in parse_config
    raise ConfigError("bad section")
  File "/usr/lib/python3.12/json/decoder.py", line 337, in decode
pkg.parser.ConfigError: bad section
`;
    const m = extractMentions(trace, known);
    expect(m.paths).toEqual(['tests/test_parser.py', 'pkg/parser.py']);
    expect(m.idents).toEqual(expect.arrayContaining(['test_parse_sections', 'parse_config', 'ConfigError']));
    expect(m.idents).not.toContain('Traceback');
    expect(m.idents).not.toContain('most');
  });

  test('jest failure output: the paths (with :line:col) and the functions', () => {
    const out = ` FAIL  test/math.test.js
  ● computeSum › adds the line items

    expect(received).toBe(expected) // Object.is equality

    Expected: 3
    Received: 4

      3 | test('adds the line items', () => {
    > 4 |   expect(computeSum([1, 2])).toBe(3);
        |                              ^

      at Object.toBe (test/math.test.js:4:30)
      at addItems (src/math.js:10:3)
      at processTicksAndRejections (node:internal/process/task_queues:95:5)
`;
    const m = extractMentions(out, known);
    expect(m.paths).toEqual(['test/math.test.js', 'src/math.js']);
    expect(m.idents).toEqual(expect.arrayContaining(['computeSum', 'addItems']));
    for (const noise of ['expect', 'toBe', 'Object', 'Expected', 'processTicksAndRejections']) expect(m.idents).not.toContain(noise);
  });

  test('task prose: backticks, dotted names, basenames; ambiguous basenames and English words are not mentions', () => {
    const text =
      'The `Parser.read_section` method fails when a section is empty; see parser.py and pkg.parser. ' +
      'Also index.js is wrong. This Should Not Count, but HTTPServer and maxRetries do.';
    const m = extractMentions(text, known);
    expect(m.paths).toEqual(['pkg/parser.py']); // index.js names 4 files: too ambiguous
    expect(m.idents).toEqual(expect.arrayContaining(['Parser', 'read_section', 'maxRetries']));
    for (const word of ['The', 'This', 'Should', 'Not', 'Count', 'method', 'fails', 'section']) expect(m.idents).not.toContain(word);
  });
});
