// Python runners: pytest (its FAILURES / ERRORS sections and short test summary) and unittest
// (python -m unittest, Django's runner).
import { block, isBlank, type Block, type Ctx, type DetectorResult } from './blocks';

// ---------------------------------------------------------------------------
// pytest
// ---------------------------------------------------------------------------

const pytestKey = (line: string): boolean => /^E\s|^>\s|^\S+\.py:\d+:/.test(line) || /^\w*(?:Error|Exception)\b/.test(line);

export function detectPytest({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let inSection = false;
  let cur: Block | null = null;
  let capture: { label: string; lines: string[] } | null = null;
  let summaryCount: number | undefined;
  let summaryStart = -1;

  const flushCapture = (): void => {
    if (!cur || !capture) return;
    const shown = capture.lines.filter((l) => !isBlank(l)).slice(-8);
    const total = capture.lines.length;
    cur.body.push(`--- ${capture.label}${total > shown.length ? ` (${total} lines, last ${shown.length} shown)` : ''} ---`, ...shown);
    capture = null;
  };
  const close = (): void => {
    flushCapture();
    cur = null;
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const c = line.charCodeAt(0);
    if (c === 61 /* = */) {
      const m = /^={3,} (.+?) ={3,}$/.exec(line);
      if (m) {
        close();
        const title = m[1];
        inSection = title === 'FAILURES' || title === 'ERRORS';
        if (title === 'short test summary info') summaryStart = i + 1;
        const count = pytestCount(title);
        if (count !== undefined) summaryCount = count;
        continue;
      }
    }
    if (!inSection) {
      // `-q` prints the totals without the `=` frame.
      if (c >= 48 && c <= 57 && / in [\d.]+s\b/.test(line)) {
        const count = pytestCount(line);
        if (count !== undefined) summaryCount = count;
      }
      continue;
    }
    if (c === 95 /* _ */) {
      const m = /^_{3,} (.+?) _{3,}$/.exec(line);
      if (m) {
        close();
        const title = m[1];
        let name = title;
        const files: string[] = [];
        const collecting = /^ERROR collecting (.+)$/.exec(title);
        if (collecting) {
          name = collecting[1];
          files.push(collecting[1]);
        } else {
          name = title.replace(/^ERROR at (?:setup|teardown) of /, '');
        }
        cur = block('pytest', { start: i, header: `__ ${title} __`, name, files, isKey: pytestKey });
        blocks.push(cur);
        continue;
      }
    }
    if (!cur) continue;
    const target: Block = cur;
    if (c === 45 /* - */) {
      const m = /^-{3,} (Captured .+?) -{3,}$/.exec(line);
      if (m) {
        flushCapture();
        capture = { label: m[1], lines: [] };
        continue;
      }
    }
    if (capture) capture.lines.push(line);
    else target.body.push(line);
  }
  close();

  // `FAILED path::Class::test - message`: the node id names the file.
  if (summaryStart >= 0) {
    for (let i = summaryStart; i < lines.length; i++) {
      if (/^(?:PASSED|SKIPPED|XFAIL|XPASS)\b/.test(lines[i])) continue;
      const m = /^(FAILED|ERROR) (\S+)(?: - (.*))?$/.exec(lines[i]);
      if (!m) break;
      const nodeId = m[2];
      const sep = nodeId.indexOf('::');
      const file = sep >= 0 ? nodeId.slice(0, sep) : nodeId;
      const name = sep >= 0 ? nodeId.slice(sep + 2).split('::').join('.') : nodeId;
      const owner = blocks.find((b) => b.name === name);
      if (owner) {
        if (!owner.files.includes(file)) owner.files.unshift(file);
      } else {
        blocks.push(block('pytest', { start: i, header: lines[i], name, files: [file], isKey: pytestKey }));
      }
    }
  }
  return { blocks, summaryCount };
}

function pytestCount(text: string): number | undefined {
  if (!/\b(?:failed|passed|errors?|skipped|deselected|no tests ran)\b/.test(text) || !/ in [\d.]+s\b/.test(text)) return undefined;
  const failed = /\b(\d+) failed\b/.exec(text);
  const errors = /\b(\d+) errors?\b/.exec(text);
  return (failed ? Number(failed[1]) : 0) + (errors ? Number(errors[1]) : 0);
}

// ---------------------------------------------------------------------------
// unittest (python -m unittest, Django's runner)
// ---------------------------------------------------------------------------

export function detectUnittest({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let summaryCount: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('FAILED (')) {
      const f = /failures=(\d+)/.exec(line);
      const e = /errors=(\d+)/.exec(line);
      summaryCount = (f ? Number(f[1]) : 0) + (e ? Number(e[1]) : 0);
      continue;
    }
    if (!(line.startsWith('FAIL: ') || line.startsWith('ERROR: ')) || i === 0 || !/^={20,}$/.test(lines[i - 1])) continue;
    const m = /^(?:FAIL|ERROR): (\S+)(?: \((.+?)\))?/.exec(line);
    if (!m) continue;
    // `test_add (test_calc.TestCalc.test_add)` (3.11+) or `test_add (test_calc.TestCalc)`.
    const qualified = m[2] ?? m[1];
    const parts = qualified.split('.');
    const method = m[1];
    const cls = parts.length >= 2 ? (parts[parts.length - 1] === method ? parts[parts.length - 2] : parts[parts.length - 1]) : '';
    const name = cls && /^[A-Z]/.test(cls) ? `${cls}.${method}` : method;
    const body: string[] = [];
    let j = i + 1;
    if (j < lines.length && /^-{20,}$/.test(lines[j])) j++;
    for (; j < lines.length && !/^(?:={20,}|-{20,})$/.test(lines[j]); j++) body.push(lines[j]);
    blocks.push(block('unittest', { start: i, header: line, name, body, isKey: pytestKey }));
    i = j - 1;
  }
  return { blocks, summaryCount };
}
