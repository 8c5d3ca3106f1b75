// JavaScript runners: jest, node:test (TAP and spec reporters) and mocha.
import { block, indentOf, isBlank, isJsNoiseFrame, type Block, type Ctx, type DetectorResult } from './blocks';

// ---------------------------------------------------------------------------
// jest
// ---------------------------------------------------------------------------

// ` FAIL ` / ` PASS ` are badges (inverse video) when coloured: a space on each side.
const JEST_SUITE_RE = /^ ?(?:PASS|FAIL) +(\S+)/;
const JEST_END_RE = /^ ?(?:PASS|FAIL) +\S|^(?:Test Suites:|Tests:|Snapshots:|Time:|Ran all test suites|Summary of all failing tests)/;
const JEST_CONSOLE_RE = /^\s*console\.(?:log|warn|error|info|debug|trace)$/;

export function detectJest({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let suite = '';
  let summaryCount: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const suiteLine = line.includes('PASS') || line.includes('FAIL') ? JEST_SUITE_RE.exec(line) : null;
    if (suiteLine) {
      suite = suiteLine[1];
      continue;
    }
    if (line.startsWith('Tests:')) {
      const m = /(\d+) failed/.exec(line);
      summaryCount = m ? Number(m[1]) : 0;
      continue;
    }
    if (!line.includes('●')) continue;
    const m = /^(\s*)● (.+)$/.exec(line);
    if (!m) continue;
    const indent = m[1].length;
    const title = m[2].trim();
    // `● Console` holds a suite's console output (printed when several suites run), not a failure.
    if (title === 'Console' || title.startsWith('Validation Warning')) continue;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j];
      if (JEST_END_RE.test(l) || JEST_CONSOLE_RE.test(l)) break;
      if (l.includes('●') && indentOf(l) <= indent && /^\s*● /.test(l)) break;
      if (/^\s*at\s/.test(l) && isJsNoiseFrame(l)) continue;
      body.push(l);
    }
    const suiteFailed = title === 'Test suite failed to run';
    const configError = title.startsWith('Validation Error');
    const name = configError ? '' : suiteFailed ? `${suite || 'test suite'} (failed to run)` : title;
    blocks.push(
      block('jest', { start: i, header: `● ${title}`, name, key: `jest\u0000${suite}\u0000${name || title}`, body, files: suite ? [suite] : [] }),
    );
    i = j - 1;
  }
  return { blocks, summaryCount };
}

// ---------------------------------------------------------------------------
// node:test (TAP reporter, spec reporter)
// ---------------------------------------------------------------------------

const TAP_DROP_KEYS_RE = /^(?:duration_ms|failureType|type|code):/;

export function detectNodeTap({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let summaryCount: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('# fail ')) {
      summaryCount = Number(line.slice(7)) || 0;
      continue;
    }
    if (!line.includes('not ok ')) continue;
    const m = /^(\s*)not ok \d+(?: - (.*))?$/.exec(line);
    if (!m) continue;
    const rawName = m[2] ?? '';
    if (/#\s*(?:TODO|SKIP)\b/i.test(rawName)) continue;
    const name = rawName.replace(/\s+#.*$/, '').trim() || '(unnamed test)';
    // The YAML diagnostics: `---` … `...`, indented two more than the `not ok` line.
    const yaml: string[] = [];
    let j = i + 1;
    if (j < lines.length && /^\s*---\s*$/.test(lines[j])) {
      for (j++; j < lines.length && j < i + 2000; j++) {
        if (/^\s*\.\.\.\s*$/.test(lines[j])) {
          j++;
          break;
        }
        yaml.push(lines[j]);
      }
    }
    const yamlText = yaml.join('\n');
    // A suite whose children failed adds nothing but a count; a cancelled child repeats its parent.
    if (/failureType: '(?:subtestsFailed|cancelledByParent)'/.test(yamlText)) continue;
    const base = yaml.length ? Math.min(...yaml.filter((l) => !isBlank(l)).map(indentOf)) : 0;
    const body: string[] = [];
    const files: string[] = [];
    let location = '';
    for (const l of yaml) {
      const top = indentOf(l) === base ? l.slice(base) : null;
      if (top !== null && TAP_DROP_KEYS_RE.test(top)) continue;
      if (top !== null && top.startsWith('location:')) {
        location = top.slice('location:'.length).trim().replace(/^'|'$/g, '');
        const loc = /^(.*?):\d+(?::\d+)?$/.exec(location);
        if (loc) files.push(loc[1]);
      }
      if (indentOf(l) > base && isJsNoiseFrame(l)) continue;
      body.push(l);
    }
    blocks.push(block('node:test', { start: i, header: `not ok - ${name}`, name, key: `node:test\u0000${name}\u0000${location}`, body, files }));
    i = j - 1;
  }
  return { blocks, summaryCount };
}

export function detectNodeSpec({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let summaryCount: number | undefined;
  // Node 20+ repeats every failure after `✖ failing tests:`, with repo-relative locations: prefer those.
  let from = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('ℹ fail ')) summaryCount = Number(line.slice('ℹ fail '.length)) || 0;
    else if (line.includes('✖') && /^\s*✖ failing tests:\s*$/.test(line)) from = i + 1;
  }
  for (let i = from; i < lines.length; i++) {
    const line = lines[i];
    if (!line.includes('✖')) continue;
    const m = /^(\s*)✖ (.+?)(?: \([\d.]+m?s\))?\s*$/.exec(line);
    if (!m || m[2] === 'failing tests:') continue;
    const indent = m[1].length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j];
      if (!isBlank(l) && indentOf(l) <= indent) break;
      if (/^\s*at\s/.test(l) && isJsNoiseFrame(l)) continue;
      if (/^\s*generatedMessage:/.test(l)) continue;
      body.push(l);
    }
    while (body.length && isBlank(body[body.length - 1])) body.pop();
    if (body.length === 0) continue; // a suite line: its failures are listed on their own
    const files: string[] = [];
    const loc = i > 0 ? /^\s*test at (.+?):\d+(?::\d+)?\s*$/.exec(lines[i - 1]) : null;
    if (loc) files.push(loc[1]);
    blocks.push(block('node:test', { start: i, header: `✖ ${m[2]}`, name: m[2], key: `node:test-spec\u0000${m[2]}\u0000${loc?.[1] ?? ''}`, body, files }));
    i = j - 1;
  }
  return { blocks, summaryCount };
}

// ---------------------------------------------------------------------------
// mocha
// ---------------------------------------------------------------------------

const MOCHA_END_RE = /^(?:npm (?:ERR!|error)|error Command failed|make(?:\[\d+\])?: \*\*\*|Test Suites:|=+ )/;

export function detectMocha({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let from = -1;
  let summaryCount: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*(\d+) failing\s*$/.exec(lines[i]);
    if (m) {
      from = i + 1;
      summaryCount = Number(m[1]);
      break;
    }
  }
  if (from < 0) return { blocks };
  let cur: Block | null = null;
  let titleOpen = false;
  for (let i = from; i < lines.length; i++) {
    const line = lines[i];
    if (MOCHA_END_RE.test(line)) break;
    const h = /^\s{1,4}(\d+)\) (.+)$/.exec(line);
    if (h) {
      // `  1) suite`, then the nested titles on their own lines, the last ending in `:`.
      const title = h[2].trim();
      cur = block('mocha', { start: i, header: `${h[1]}) ${title}`, name: title.replace(/:$/, ''), key: `mocha\u0000${h[1]}` });
      blocks.push(cur);
      titleOpen = !title.endsWith(':');
      continue;
    }
    if (!cur) continue;
    if (titleOpen && !isBlank(line)) {
      const t = line.trim();
      cur.name = `${cur.name} ${t.replace(/:$/, '')}`;
      cur.header = `${cur.header} ${t}`;
      if (t.endsWith(':')) titleOpen = false;
      continue;
    }
    titleOpen = false;
    if (/^\s*at\s/.test(line) && isJsNoiseFrame(line)) continue;
    cur.body.push(line);
  }
  for (const b of blocks) while (b.body.length && isBlank(b.body[b.body.length - 1])) b.body.pop();
  return { blocks, summaryCount };
}
