// A large, plausible code base for ranking tests (issue 16, item 3): a Python package `shop/`
// (12 domains × 40 modules, each importing and calling functions of earlier ones and a shared
// `shop/core/util.py`) and TypeScript modules under `web/src/`, with docstrings, JSDoc and
// comments drawn from a shared vocabulary (so words recur across files, as they do), a few
// abstract-method stubs, and — the needle — `shop/shipping/labels.py` whose
// `tracking_check_digit` is a stub, beside a fully implemented lexical near-twin
// (`shop/inventory/barcodes.py`: `ean13_check_digit`). Deterministic (a seeded generator).

const DOMAINS = ['billing', 'inventory', 'shipping', 'users', 'orders', 'reports', 'search', 'notifications', 'catalog', 'payments', 'auth', 'analytics'];
const TOPICS = `models service repository validators formatters helpers handlers events cache export importers pricing rules queries schemas
tasks views serializers mappers metrics audit config clients workflows policies filters sorting pagination permissions webhooks retry
limits history archive summary templates locale currency dates`.split(/\s+/);
const VERBS = ['load', 'save', 'build', 'parse', 'format', 'validate', 'merge', 'split', 'compute', 'collect', 'render', 'resolve', 'refresh', 'normalize', 'find', 'count', 'group', 'apply', 'check', 'sync'];
const NOUNS = ['invoice', 'customer', 'address', 'item', 'price', 'discount', 'order', 'record', 'entry', 'report', 'token', 'session', 'message', 'batch', 'page', 'label', 'rate', 'limit', 'total', 'code', 'number', 'row', 'event', 'account', 'parcel', 'shipment', 'stock', 'product', 'query', 'result'];
const WORDS = `the customer's billing address, with the country code upper-cased | every open order of the account, newest first | rows whose
status is pending or failed | the total in the store's currency, rounded to cents | the cached copy when it is younger than the limit |
each line of the import, skipping blank ones | a summary of the week's events, grouped by day | the tracking page of a shipment |
the parcel's weight in grams | a product's stock level across warehouses | the invoice number, padded with zeros to eight digits |
the session token when it has not expired | the sum of the line items, taxes included | a batch of at most one hundred records |
the audit entry for a permission change | the discount that applies to the basket | the next page of results after the cursor |
the label printed on a parcel, with the carrier's name | the rate limit of the client, per minute | a webhook payload, signed with the secret`
  .split('|')
  .map((s) => s.replace(/\s+/g, ' ').trim());

/** Deterministic pseudo-random numbers in [0, 1) (a 31-bit linear congruential generator). */
function rng(seed: number): () => number {
  let a = seed % 0x80000000;
  return () => (a = (Math.imul(a, 1103515245) + 12345) & 0x7fffffff) / 0x80000000;
}

export const NEEDLE = {
  path: 'shop/shipping/labels.py',
  name: 'tracking_check_digit',
  /** The function's behaviour in other words, naming neither it nor its file. */
  description:
    'A function in this project is not implemented yet (its body is a stub). It computes the check digit of a parcel tracking code: digits weighted 3 and 1 alternately from the left, the digit that brings the weighted sum up to a multiple of ten.',
  /** A check of the behaviour (python3 in the repository's root). */
  check: ['python3', '-c', "from shop.shipping.labels import tracking_check_digit as f; assert f('123456') == 1 and f('1234567') == 0"],
  stubBody: '    raise NotImplementedError\n',
  fixedBody: "    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(code))\n    return (10 - total % 10) % 10\n",
};

const LABELS = `"""Shipping labels: what is printed on a parcel and how the carrier reads it back."""
from shop.core.util import clean_text


def label_lines(shipment):
    """The lines printed on a parcel's label: recipient, street, city, and the carrier's name."""
    return [clean_text(shipment.recipient), clean_text(shipment.street), clean_text(shipment.city), shipment.carrier]


def label_width(lines):
    """The width of a label in characters: its longest line, at least forty."""
    return max([40] + [len(line) for line in lines])


def ${NEEDLE.name}(code):
    """Check digit of a tracking code.

    Digits are weighted 3 and 1 alternately, starting from the left; the check digit is the
    one that makes the weighted sum a multiple of ten.
    """
${NEEDLE.stubBody}

def format_tracking(code):
    """The tracking code in groups of four digits, as printed under the barcode."""
    return ' '.join(code[i:i + 4] for i in range(0, len(code), 4))
`;

const BARCODES = `"""Product barcodes (EAN-13): reading, checking and printing them."""
from shop.core.util import clean_text


def ean13_check_digit(digits):
    """Check digit of an EAN-13 product barcode.

    The first twelve digits are weighted 1 and 3 alternately from the left; the check digit makes
    the weighted sum a multiple of ten.
    """
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits[:12]))
    return (10 - total % 10) % 10


def is_valid_barcode(code):
    """Whether a scanned product barcode has thirteen digits and a correct check digit."""
    code = clean_text(code)
    return len(code) == 13 and code.isdigit() and ean13_check_digit(code) == int(code[12])
`;

const UTIL = `"""Helpers every module uses."""


def clean_text(value):
    """The value as text, trimmed, with runs of whitespace collapsed to one space."""
    return ' '.join(str(value).split())


def ensure_list(value):
    """The value as a list: None is empty, a list is itself, anything else a list of one."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
`;

function pythonModule(r: () => number, domain: string, topic: string, earlier: { module: string; fn: string }[]): { text: string; fns: string[] } {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const deps = earlier.length ? [pick(earlier), pick(earlier)].filter((d, k, all) => all.findIndex((x) => x.fn === d.fn) === k) : [];
  const imports = ['from shop.core.util import clean_text, ensure_list', ...deps.map((d) => `from ${d.module} import ${d.fn}`)];
  const fns: string[] = [];
  const bodies: string[] = [];
  const count = 3 + Math.floor(r() * 4);
  for (let k = 0; k < count; k++) {
    const name = `${pick(VERBS)}_${pick(NOUNS)}_${topic}${k ? `_${k}` : ''}`;
    fns.push(name);
    const doc = `${name.split('_')[0][0].toUpperCase()}${name.split('_')[0].slice(1)}s ${pick(WORDS)}; see also ${pick(WORDS)}.`;
    const dep = deps[k % Math.max(1, deps.length)];
    const call = dep ? `    values = ensure_list(${dep.fn}(value))\n` : '    values = ensure_list(value)\n';
    bodies.push(`def ${name}(value, limit=None):\n    """${doc}"""\n    # ${pick(WORDS)}\n${call}    return [clean_text(v) for v in values][:limit]\n`);
  }
  // Now and then an abstract base with a placeholder method (a stub nobody is asked to write).
  if (r() < 0.08) bodies.push(`class ${topic[0].toUpperCase()}${topic.slice(1)}Backend:\n    """Where ${domain} ${topic} are kept."""\n\n    def store(self, rows):\n        """Keeps ${pick(WORDS)}."""\n        raise NotImplementedError\n`);
  const text = `"""${domain[0].toUpperCase()}${domain.slice(1)} ${topic}: ${pick(WORDS)}."""\n${imports.join('\n')}\n\n\n${bodies.join('\n\n')}`;
  return { text, fns };
}

function tsModule(r: () => number, domain: string, topic: string, earlier: { module: string; fn: string }[]): { text: string; fns: string[] } {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const dep = earlier.length ? pick(earlier) : undefined;
  const camel = (s: string) => s.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
  const fns: string[] = [];
  const parts: string[] = [];
  for (let k = 0; k < 3; k++) {
    const name = camel(`${pick(VERBS)}_${pick(NOUNS)}_${topic}${k ? k : ''}`);
    fns.push(name);
    const call = dep ? `${dep.fn}(input)` : 'input';
    parts.push(`/** ${name.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`)}: ${pick(WORDS)}. */\nexport function ${name}(input: string[]): string[] {\n  // ${pick(WORDS)}\n  return ${call}.map((s) => s.trim()).filter(Boolean);\n}\n`);
  }
  const rel = dep ? `import { ${dep.fn} } from '${dep.module}';\n\n` : '';
  return { text: `${rel}${parts.join('\n')}`, fns };
}

/** The files (path → content) of the code base: 560+ source files. */
export function largeCodebase(seed = 16): Record<string, string> {
  const r = rng(seed);
  const files: Record<string, string> = { 'shop/core/util.py': UTIL, [NEEDLE.path]: LABELS, 'shop/inventory/barcodes.py': BARCODES };
  const py: { module: string; fn: string }[] = [];
  for (const topic of TOPICS) {
    for (const domain of DOMAINS) {
      const rel = `shop/${domain}/${topic}.py`;
      if (rel in files) continue;
      const m = pythonModule(r, domain, topic, py);
      files[rel] = m.text;
      for (const fn of m.fns) py.push({ module: `shop.${domain}.${topic}`, fn });
    }
  }
  const ts: { module: string; fn: string }[] = [];
  for (const domain of DOMAINS.slice(0, 8)) {
    for (const topic of TOPICS.slice(0, 10)) {
      const m = tsModule(r, domain, topic, ts);
      files[`web/src/${domain}/${topic}.ts`] = m.text;
      for (const fn of m.fns) ts.push({ module: `../${domain}/${topic}`, fn });
    }
  }
  return files;
}
