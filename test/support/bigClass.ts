// A large Python module for file-view tests and benchmarks: a class of many methods, one of
// them a stub in the middle (`process_response`), its natural template (`preprocess_request`)
// ten methods (140 lines) above it — out of reach of the lines around the stub, so a view holds
// it only by picking the sibling — and callers of the stub near the top and the bottom of the file.

export interface BigClass {
  /** Files of the repository: the big module and a few small ones that use it. */
  files: Record<string, string>;
  path: string;
  lines: number;
  /** What the tests look for: the stub's signature, the template's body, the callers' lines. */
  stub: string;
  classHeader: string;
  templateBody: string;
  callerLines: string[];
}

function method(i: number): string {
  return [
    `    def handle_${i}(self, request, *args, **kwargs):`,
    `        """Handle kind ${i} of request: validate, dispatch, record."""`,
    `        if request is None:`,
    `            raise ValueError("handle_${i}: no request")`,
    `        payload = dict(request.payload or {})`,
    `        payload.setdefault("kind", ${i})`,
    `        for key, value in sorted(kwargs.items()):`,
    `            payload[key] = self._coerce(value, ${i})`,
    `        result = self.dispatch(request, payload, *args)`,
    `        if result is None and self.strict:`,
    `            raise LookupError("handle_${i} found nothing")`,
    `        self.history.append((${i}, request.id, len(payload)))`,
    `        return result`,
    '',
  ].join('\n');
}

/** Methods between the template and the stub. */
const TEMPLATE_ABOVE = 10;

/** About `lines` lines (≥ 1,000); the stub sits in the middle. */
export function bigClass(lines = 3000): BigClass {
  const per = 14;
  const count = Math.floor((lines - 50) / per);
  const middle = Math.floor(count / 2);
  const template = [
    '    def preprocess_request(self, request):',
    '        """Run the before-request functions; the first that returns a value ends the request."""',
    '        for func in self.before_request_funcs:',
    '            rv = func(request)',
    '            if rv is not None:',
    '                return rv',
    '        return None',
    '',
  ].join('\n');
  const stub = [
    '    def process_response(self, response):',
    '        """Run the after-request functions on the response, last registered first, and return it."""',
    '        raise NotImplementedError',
    '',
  ].join('\n');
  const early = [
    '    def full_dispatch_request(self, request):',
    '        rv = self.preprocess_request(request)',
    '        if rv is None:',
    '            rv = self.dispatch(request, {})',
    '        response = self.make_response(rv)',
    '        return self.process_response(response)  # caller-one',
    '',
  ].join('\n');
  const late = [
    '    def finalize_request(self, rv, from_error_handler=False):',
    '        response = self.make_response(rv)',
    '        try:',
    '            response = self.process_response(response)  # caller-two',
    '        except Exception:',
    '            if not from_error_handler:',
    '                raise',
    '        return response',
    '',
  ].join('\n');
  const head = [
    '"""A small web application core, padded out to a large module."""',
    'import logging',
    'import typing as t',
    'from collections import defaultdict',
    '',
    'log = logging.getLogger(__name__)',
    '',
    '',
    'class Application:',
    '    """The central object: handlers, hooks and the request cycle."""',
    '',
    '    def __init__(self, strict=False):',
    '        self.strict = strict',
    '        self.history = []',
    '        self.before_request_funcs = []',
    '        self.after_request_funcs = []',
    '        self.handlers = defaultdict(list)',
    '',
    '    def _coerce(self, value, kind):',
    '        return value if kind % 2 else str(value)',
    '',
    '    def dispatch(self, request, payload, *args):',
    '        return self.handlers.get(request.path, [None])[0]',
    '',
    '    def make_response(self, rv):',
    '        return rv',
    '',
  ].join('\n');
  const body: string[] = [head];
  for (let i = 0; i < count; i++) {
    if (i === 3) body.push(early);
    if (i === middle - TEMPLATE_ABOVE) body.push(template);
    if (i === middle) body.push(stub);
    if (i === count - 3) body.push(late);
    body.push(method(i));
  }
  const text = `${body.join('\n')}\n`;
  const files: Record<string, string> = {
    'webapp/app.py': text,
    'webapp/__init__.py': 'from webapp.app import Application\n',
    'webapp/testing.py': 'from webapp.app import Application\n\n\ndef client():\n    return Application(strict=True)\n',
    'webapp/helpers.py': 'def url_for(name):\n    return "/" + name\n\n\ndef flash(message):\n    return message\n',
  };
  return {
    files,
    path: 'webapp/app.py',
    lines: text.split('\n').length - 1,
    stub,
    classHeader: 'class Application:',
    templateBody: template,
    callerLines: ['        return self.process_response(response)  # caller-one', '            response = self.process_response(response)  # caller-two'],
  };
}
