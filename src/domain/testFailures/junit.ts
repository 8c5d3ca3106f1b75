// JUnit through Maven Surefire (`<<< FAILURE!` blocks and the Results section) or Gradle
// (`FooTest > testAdd() FAILED`), with stack traces cut to the project's frames.
import { block, isBlank, type Block, type Ctx, type DetectorResult } from './blocks';

export const JAVA_LIBRARY_RE =
  /^(?:java|javax|jdk|sun|com\.sun|org\.junit|junit|org\.opentest4j|org\.apache\.maven|org\.gradle|worker\.org\.gradle|org\.assertj|org\.hamcrest|org\.mockito|kotlin|kotlinx|scala|org\.testng|org\.spockframework|org\.codehaus|net\.bytebuddy|org\.springframework\.test)\./;
export const JAVA_FRAME_RE = /^\s*at\s+(?:[\w.-]*\/\/?)?([\w$.]+)\.([\w$<>-]+)\((.*)\)\s*$/;

function isJavaLibraryFrame(line: string): boolean {
  const m = JAVA_FRAME_RE.exec(line);
  return m !== null && JAVA_LIBRARY_RE.test(m[1]);
}

/** Exception lines and the project's frames; library frames and `... N more` dropped. */
function javaBody(raw: string[]): string[] {
  const out: string[] = [];
  let omitted = 0;
  let frames = 0;
  let pad = '\t';
  for (const l of raw) {
    if (/^\s*\.\.\. \d+ more\s*$/.test(l)) continue;
    if (JAVA_FRAME_RE.test(l)) {
      pad = /^\s*/.exec(l)?.[0] || '\t';
      if (isJavaLibraryFrame(l) || frames >= 8) {
        omitted++;
        continue;
      }
      frames++;
    }
    out.push(l);
  }
  if (omitted) out.push(`${pad}… ${omitted} library frames omitted`);
  return out;
}

function javaName(raw: string, currentClass: string): string {
  const paren = /^([\w$]+)\(([\w$.]+)\)$/.exec(raw); // testAdd(com.acme.FooTest)
  if (paren) return `${paren[2].split('.').pop()}.${paren[1]}`;
  const parts = raw.replace(/\(\)$/, '').split('.');
  if (parts.length >= 2 && /^[A-Z]/.test(parts[parts.length - 2])) return `${parts[parts.length - 2]}.${parts[parts.length - 1]}`;
  const cls = currentClass.split('.').pop();
  return cls ? `${cls}.${raw}` : raw;
}

export function detectJunit({ lines }: Ctx): DetectorResult {
  const blocks: Block[] = [];
  let currentClass = '';
  let summaryCount: number | undefined;
  let gradleCount: number | undefined;
  const results: { name: string; line: string; at: number }[] = [];
  let inResults = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const plain = line.replace(/^\[(?:ERROR|INFO|WARNING)\]\s?/, '');
    if (plain.startsWith('Running ')) {
      currentClass = plain.slice('Running '.length).trim();
      continue;
    }
    if (plain.startsWith('Tests run:')) {
      const cls = /<<< (?:FAILURE|ERROR)!.*?\bin ([\w$.]+)/.exec(plain);
      if (cls) currentClass = cls[1];
      else if (!plain.includes('Time elapsed')) {
        const m = /Failures: (\d+), Errors: (\d+)/.exec(plain);
        if (m) summaryCount = Number(m[1]) + Number(m[2]);
      }
      continue;
    }
    if (line.includes('<<<')) {
      const m = /^(.+?)\s+(?:--\s+)?Time elapsed: [\d.,]+\s*s(?:ec)?\s+<<< (?:FAILURE|ERROR)!\s*$/.exec(plain);
      if (!m) continue;
      const name = javaName(m[1].trim(), currentClass);
      const raw: string[] = [];
      let j = i + 1;
      for (; j < lines.length && !isBlank(lines[j]) && !/^\[(?:INFO|ERROR|WARNING)\]/.test(lines[j]) && !lines[j].startsWith('Tests run:'); j++) raw.push(lines[j]);
      blocks.push(block('junit', { start: i, header: plain.trim(), name, key: `junit\u0000${name}`, body: javaBody(raw) }));
      i = j - 1;
      continue;
    }
    // Surefire's `Results:` section: `[ERROR]   FooTest.testAdd:12 expected:<5> but was:<4>`.
    if (/^\[ERROR\] (?:Failures|Errors):\s*$/.test(line)) {
      inResults = true;
      continue;
    }
    if (inResults) {
      const r = /^\[ERROR\]\s{2,}([\w$.]+?)(?::\d+)?\s+(.*)$/.exec(line);
      if (r && !/^Run \d+:/.test(r[2])) {
        results.push({ name: r[1], line: line.replace(/^\[ERROR\]\s+/, ''), at: i });
        continue;
      }
      if (!/^\[ERROR\]\s{2,}/.test(line)) inResults = false;
    }
    // Gradle: `FooTest > testAdd() FAILED`, then the indented exception.
    if (line.endsWith(' FAILED') && !line.startsWith('>') && line.includes(' > ')) {
      const g = /^(\S.*?) > (.+?) FAILED$/.exec(line);
      if (!g) continue;
      const name = `${g[1].split('.').pop()}.${g[2].replace(/\(\)$/, '')}`;
      const raw: string[] = [];
      let j = i + 1;
      for (; j < lines.length && /^\s+\S/.test(lines[j]); j++) raw.push(lines[j]);
      blocks.push(block('junit', { start: i, header: line, name, key: `junit\u0000${name}`, body: javaBody(raw) }));
      i = j - 1;
      continue;
    }
    const gc = /^(\d+) tests? completed, (\d+) failed/.exec(line);
    if (gc) gradleCount = (gradleCount ?? 0) + Number(gc[2]);
  }
  for (const r of results) {
    if (!blocks.some((b) => b.name === r.name)) blocks.push(block('junit', { start: r.at, header: r.line, name: r.name, key: `junit\u0000${r.name}` }));
  }
  return { blocks, summaryCount: summaryCount ?? gradleCount };
}
