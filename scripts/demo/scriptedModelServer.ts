/**
 * Over 300 lines because it is one fixture: the OpenAI wire format (chat, streaming, errors,
 * Retry-After, usage) and the scripting every test leans on belong together.
 *
 * ScriptedModelServer: a local OpenAI-compatible HTTP server whose answers are
 * scripted in-process. The tests and the offline demo point the real `openai`
 * SDK at it (`baseURL: server.url`), so everything between Weaver's provider
 * layer and the wire (retries, timeouts, aborts, error classes, usage
 * accounting) is exercised for real, with no network beyond loopback.
 *
 * Wire surface (with or without the `/v1` prefix):
 *   POST /v1/chat/completions   answered by the next scripted step of body.model; with
 *                               `stream: true` an AnswerStep goes out as Server-Sent Events
 *                               (chat.completion.chunk objects, then `data: [DONE]`)
 *   GET  /v1/models             the models that have a script or a default
 *   GET  /v1/models/:id
 *
 * A scripting mistake (a script that ran out, no script, a step that throws or is invalid) is
 * answered with a 400 naming it: a client that waits out 5xx outages must not wait on a test bug.
 *
 * Usage:
 *   const server = await ScriptedModelServer.start();
 *   server.script('gpt-a', [{ content: 'hello' }, { status: 429, headers: { 'retry-after': '2' } }]);
 *   const client = new OpenAI({ baseURL: server.url, apiKey: 'test' });
 *   ...
 *   await server.close();
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/** One part of a multi-part message content (only `text` parts matter here). */
export interface ContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/** A chat message as received; extra fields (name, tool_calls…) are kept. */
export interface ChatMessage {
  role: string;
  content?: string | ContentPart[] | null;
  [key: string]: unknown;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  /** Sent as given: e.g. `{ cached_tokens }`, the part of the prompt a provider served from its cache. */
  prompt_tokens_details?: { cached_tokens?: number };
}

/**
 * A normal chat.completion answer. When the request has `stream: true` it is sent as a stream
 * in OpenAI's wire format: a chunk with `delta.role`, the content in `chunks` pieces, a chunk
 * with `finish_reason`, then (only with `stream_options.include_usage`) a `choices: []` chunk
 * carrying the usage, then `data: [DONE]`.
 */
export interface AnswerStep {
  /** Assistant message content; an object is sent JSON.stringified (structured output). */
  content: string | object;
  /** Token counts to report; missing fields are derived from lengths (chars / 4, rounded up). */
  usage?: Partial<Usage>;
  /** Defaults to 'stop'; 'length' lets tests exercise truncation handling. */
  finishReason?: 'stop' | 'length' | 'content_filter' | 'tool_calls';
  headers?: Record<string, string>;
  /** Wait before answering (before the first byte; for a stream, before its headers). */
  delayMs?: number;
  /** Streaming only: how many content chunks (default: about one per 16 characters, at most 64). */
  chunks?: number;
  /** Streaming only: pause between two chunks (default 0: all written at once). */
  chunkDelayMs?: number;
  /** Streaming only: end the response after this many events, before the finish_reason and
   *  [DONE] — a proxy or server closing the connection mid-answer. */
  endStreamAfter?: number;
  /** Streaming only: destroy the connection (no clean end) after this many events — a reset mid-answer. */
  dropStreamAfter?: number;
}

/**
 * An arbitrary status and body, typically an HTTP error (429, 500, 401…).
 * Without `body`, a status >= 400 gets an OpenAI-style `{ error: { message, type, code } }`
 * body suited to the status; a string body is sent verbatim, anything else as JSON.
 */
export interface StatusStep {
  status: number;
  body?: unknown;
  /** e.g. `{ 'retry-after': '2' }` or `{ 'retry-after-ms': '50' }` for a 429. */
  headers?: Record<string, string>;
  delayMs?: number;
}

/** 200 with `content-type: application/json` and a body that does not parse. */
export interface MalformedStep {
  malformed: true;
  /** The raw body to send (defaults to truncated JSON). */
  body?: string;
  contentType?: string;
  delayMs?: number;
}

/** Never answers; ends only when the client disconnects or the server closes. */
export interface HangStep {
  hang: true;
}

/**
 * Reads the whole request, then drops the connection without a byte of response (after
 * `delayMs`): a request that reached the provider and whose answer never came back.
 */
export interface DropStep {
  drop: true;
  delayMs?: number;
}

export type StaticStep = AnswerStep | StatusStep | MalformedStep | HangStep | DropStep;

/** Decides the answer from the request (e.g. the demo looks at the prompt). May be async. */
export type StepFn = (req: RecordedRequest) => StaticStep | Promise<StaticStep>;

export type Step = StaticStep | StepFn;

/** Everything the server saw about one POST to chat/completions. Updated in place. */
export interface RecordedRequest {
  /** Global sequence number, starting at 1 (also used in the response id and x-request-id). */
  id: number;
  /** body.model, or '' when the body was not usable (then status is 400). */
  model: string;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The parsed JSON body ({} if it did not parse). */
  body: Record<string, unknown>;
  rawBody: string;
  messages: ChatMessage[];
  receivedAt: number;
  /** When the server stopped working on it: response written, or client gone. */
  finishedAt?: number;
  /** True when the connection closed before the response was written (for a stream: before `[DONE]`). */
  aborted: boolean;
  /** True when the answer went out as a Server-Sent Events stream (`stream: true` answered by an AnswerStep). */
  streamed: boolean;
  /** The HTTP status written, or null while pending / when aborted (a stream's 200 is set once it completes). */
  status: number | null;
  /** Which kind of step answered it (for debugging test failures). */
  kind?: 'answer' | 'status' | 'malformed' | 'hang' | 'drop' | 'exhausted' | 'invalid' | 'step-error';
}

export interface ScriptedModelServerEvents {
  /** A chat completion request was received and parsed (before it is answered). */
  request: [RecordedRequest];
  /** A response was fully handed to the socket (for a stream: after `data: [DONE]`). */
  response: [RecordedRequest];
  /** The client went away (or the server closed) before a response was written. */
  aborted: [RecordedRequest];
}

export interface StartOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Defaults to 127.0.0.1 (loopback only). */
  host?: string;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Concatenated text of a message's content (string or text parts). */
export function messageText(message: ChatMessage): string {
  const { content } = message;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((part) => (typeof part.text === 'string' ? part.text : '')).join('');
  }
  return '';
}

/** Text of the last user message, the usual thing a scripted function looks at. */
export function lastUserText(req: RecordedRequest): string {
  for (let i = req.messages.length - 1; i >= 0; i--) {
    if (req.messages[i].role === 'user') return messageText(req.messages[i]);
  }
  return '';
}

const estimateTokens = (chars: number): number => Math.ceil(chars / 4);

/** OpenAI-style error body for a status, so the SDK builds a meaningful message. */
function defaultErrorBody(status: number): { error: { message: string; type: string; code: string | null } } {
  const table: Record<number, [string, string, string | null]> = {
    400: ['Invalid request (scripted).', 'invalid_request_error', null],
    401: ['Incorrect API key provided (scripted).', 'invalid_request_error', 'invalid_api_key'],
    403: ['You are not allowed to use this model (scripted).', 'invalid_request_error', 'permission_denied'],
    404: ['The model does not exist (scripted).', 'invalid_request_error', 'model_not_found'],
    408: ['Request timed out (scripted).', 'timeout', null],
    409: ['Conflict (scripted).', 'invalid_request_error', null],
    422: ['Unprocessable entity (scripted).', 'invalid_request_error', null],
    429: ['Rate limit reached for requests (scripted).', 'requests', 'rate_limit_exceeded'],
    500: ['The server had an error while processing your request (scripted).', 'server_error', null],
    502: ['Bad gateway (scripted).', 'server_error', null],
    503: ['The engine is currently overloaded, please try again later (scripted).', 'server_error', 'overloaded'],
    504: ['Gateway timeout (scripted).', 'server_error', null],
  };
  const [message, type, code] =
    table[status] ?? [`Scripted error with status ${status}.`, status >= 500 ? 'server_error' : 'invalid_request_error', null];
  return { error: { message, type, code } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Resolves after `ms`, or early (false) when the signal aborts, so delays never outlive the client. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Per-request state shared between the handler and the close listener. */
interface Exchange {
  res: http.ServerResponse;
  /** Aborted when the connection closes before we answered. */
  controller: AbortController;
  /** Set when we call res.end(): from then on a close is not an abort. */
  answered: boolean;
  record?: RecordedRequest;
}

const MAX_BODY_BYTES = 20 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

export class ScriptedModelServer extends EventEmitter<ScriptedModelServerEvents> {
  /** Base URL ending in /v1, for `new OpenAI({ baseURL })`. */
  readonly url: string;
  readonly port: number;

  private readonly server: http.Server;
  private readonly queues = new Map<string, Step[]>();
  private readonly defaults = new Map<string, Step>();
  private records: RecordedRequest[] = [];
  private nextId = 1;
  private inFlightTotal = 0;
  private maxInFlightTotal = 0;
  private readonly inFlightByModel = new Map<string, number>();
  private readonly maxInFlightByModel = new Map<string, number>();
  private closed: Promise<void> | undefined;

  private constructor(server: http.Server, host: string, port: number) {
    super();
    this.server = server;
    this.port = port;
    // IPv6 literals need brackets in a URL.
    const hostPart = host.includes(':') ? `[${host}]` : host;
    this.url = `http://${hostPart}:${port}/v1`;
  }

  static async start(opts: StartOptions = {}): Promise<ScriptedModelServer> {
    const host = opts.host ?? '127.0.0.1';
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    const instance = new ScriptedModelServer(server, host, port);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      instance.handle(req, res).catch((err: unknown) => {
        // Last resort: a bug here must surface as a 500, not a hung test.
        if (!res.headersSent && !res.destroyed) {
          sendJson(res, 500, { error: { message: `ScriptedModelServer internal error: ${String(err)}`, type: 'server_error', code: null } });
        }
      });
    });
    return instance;
  }

  // ----- scripting ---------------------------------------------------------

  /** Appends steps to `model`'s queue; each request to that model consumes one. */
  script(model: string, steps: Step[]): this {
    const queue = this.queues.get(model) ?? [];
    queue.push(...steps);
    this.queues.set(model, queue);
    return this;
  }

  /** The step used when `model`'s queue is empty (undefined removes it). */
  setDefault(model: string, step: Step | undefined): this {
    if (step === undefined) this.defaults.delete(model);
    else this.defaults.set(model, step);
    return this;
  }

  /** Steps still queued for `model` (lets tests assert the whole script was consumed). */
  remaining(model: string): number {
    return this.queues.get(model)?.length ?? 0;
  }

  /** Clears scripts, defaults, records and high-water marks (requests still in flight keep counting). */
  reset(): void {
    this.queues.clear();
    this.defaults.clear();
    this.records = [];
    this.maxInFlightTotal = this.inFlightTotal;
    this.maxInFlightByModel.clear();
    for (const [model, n] of this.inFlightByModel) if (n > 0) this.maxInFlightByModel.set(model, n);
  }

  // ----- observability -----------------------------------------------------

  /** Every chat completion request received since the last reset, in arrival order. */
  get requests(): readonly RecordedRequest[] {
    return this.records;
  }

  requestsFor(model: string): RecordedRequest[] {
    return this.records.filter((r) => r.model === model);
  }

  count(model?: string): number {
    return model === undefined ? this.records.length : this.requestsFor(model).length;
  }

  abortedCount(model?: string): number {
    return this.records.filter((r) => r.aborted && (model === undefined || r.model === model)).length;
  }

  /** Requests currently being processed, all models. */
  get inFlight(): number {
    return this.inFlightTotal;
  }

  /** High-water mark of `inFlight` since start or reset. */
  get maxInFlight(): number {
    return this.maxInFlightTotal;
  }

  inFlightFor(model: string): number {
    return this.inFlightByModel.get(model) ?? 0;
  }

  maxInFlightFor(model: string): number {
    return this.maxInFlightByModel.get(model) ?? 0;
  }

  /**
   * Resolves once `predicate(this)` holds; rejects after `timeoutMs`. Checked on
   * every server event and on a short poll (for predicates on outside state).
   */
  waitFor(predicate: (server: this) => boolean, timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let ok = false;
        try {
          ok = predicate(this);
        } catch (err) {
          finish();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (ok) {
          finish();
          resolve();
        }
      };
      const finish = (): void => {
        clearInterval(poll);
        clearTimeout(timer);
        this.off('request', check);
        this.off('response', check);
        this.off('aborted', check);
      };
      const poll = setInterval(check, 10);
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`ScriptedModelServer.waitFor: condition not met within ${timeoutMs}ms`));
      }, timeoutMs);
      this.on('request', check);
      this.on('response', check);
      this.on('aborted', check);
      check();
    });
  }

  // ----- lifecycle ---------------------------------------------------------

  /** Stops listening and destroys every connection, hanging ones included. Idempotent. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve, reject) => {
      this.server.close((err) => (err ? reject(err) : resolve()));
      // close() alone waits for open sockets; hangs and keep-alives would block test exit.
      this.server.closeAllConnections();
    });
    return this.closed;
  }

  // ----- request handling --------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const exchange: Exchange = { res, controller: new AbortController(), answered: false };
    // Listen right away: a close before we answered is a client abort. (req 'close'
    // fires once the body is read in Node 20, so res 'close' is the reliable signal.)
    res.on('close', () => {
      if (!exchange.answered) this.markAborted(exchange);
    });

    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '').replace(/^\/v1(?=\/|$)/, '');
    const method = req.method ?? 'GET';

    if (path === '/models' || path.startsWith('/models/')) {
      if (method !== 'GET') return this.answer(exchange, 405, errorBody('Method not allowed.', 'invalid_request_error'));
      return this.answerModels(exchange, path);
    }
    if (path !== '/chat/completions') {
      return this.answer(exchange, 404, errorBody(`Unknown path ${req.url ?? ''} (ScriptedModelServer serves /v1/chat/completions and /v1/models).`, 'invalid_request_error'));
    }
    if (method !== 'POST') {
      return this.answer(exchange, 405, errorBody('Method not allowed: use POST.', 'invalid_request_error'));
    }

    const rawBody = await readBody(req);
    if (rawBody === null) {
      // Client vanished or sent too much; nothing sensible to record or answer.
      if (!res.destroyed) this.answer(exchange, 413, errorBody('Request body too large.', 'invalid_request_error'));
      return;
    }

    let body: Record<string, unknown> = {};
    let parseError: string | null = null;
    try {
      const parsed: unknown = JSON.parse(rawBody);
      if (isObject(parsed)) body = parsed;
      else parseError = 'The request body must be a JSON object.';
    } catch {
      parseError = 'We could not parse the JSON body of your request.';
    }
    const model = typeof body.model === 'string' ? body.model : '';
    if (!parseError && !model) parseError = "Missing required parameter: 'model'.";
    const messages = Array.isArray(body.messages) ? (body.messages.filter(isObject) as ChatMessage[]) : [];

    const record: RecordedRequest = {
      id: this.nextId++,
      model,
      method,
      path: req.url ?? '',
      headers: req.headers,
      body,
      rawBody,
      messages,
      receivedAt: Date.now(),
      aborted: false,
      streamed: false,
      status: null,
    };
    exchange.record = record;
    this.records.push(record);
    this.enter(model);
    this.emit('request', record);

    // The socket may have closed while the body was being read.
    if (exchange.controller.signal.aborted || res.destroyed) {
      this.markAborted(exchange);
      return;
    }
    if (parseError) {
      record.kind = 'invalid';
      return this.answer(exchange, 400, errorBody(parseError, 'invalid_request_error'));
    }

    // Take the step now (arrival order), before any await.
    const step = this.queues.get(model)?.shift() ?? this.defaults.get(model);
    if (step === undefined) {
      record.kind = 'exhausted';
      const scripted = this.queues.has(model);
      const message = scripted
        ? `ScriptedModelServer: the script for model '${model}' ran out (request #${record.id}); script more steps or setDefault().`
        : `ScriptedModelServer: no script for model '${model}' (request #${record.id}); call script('${model}', …) or setDefault().`;
      // A scripting mistake, not an outage: a 400 fails the call at once (a 5xx would be waited out).
      return this.answer(exchange, 400, { error: { message, type: 'scripted_model_server_error', code: 'script_exhausted' } });
    }

    let resolved: StaticStep;
    try {
      resolved = typeof step === 'function' ? await step(record) : step;
    } catch (err) {
      record.kind = 'step-error';
      const message = `ScriptedModelServer: step function for model '${model}' threw: ${err instanceof Error ? err.message : String(err)}`;
      return this.answer(exchange, 400, { error: { message, type: 'scripted_model_server_error', code: 'step_threw' } });
    }
    return this.play(exchange, record, resolved);
  }

  /** Plays one resolved step for a recorded chat completion request. */
  private async play(exchange: Exchange, record: RecordedRequest, step: StaticStep): Promise<void> {
    const { signal } = exchange.controller;

    if ('hang' in step) {
      record.kind = 'hang';
      // Nothing to do: the close listener records the abort when the client or close() ends it.
      return;
    }
    if (step.delayMs && step.delayMs > 0) {
      const completed = await sleep(step.delayMs, signal);
      if (!completed) return; // aborted during the delay: write nothing
    }

    if ('drop' in step) {
      record.kind = 'drop';
      // The close listener records it as aborted (nothing was answered).
      exchange.res.destroy();
      return;
    }

    if ('malformed' in step) {
      record.kind = 'malformed';
      const body = step.body ?? '{"id":"chatcmpl-malformed","object":"chat.completion","choices":[{"index":0,"message":{"role":"assis';
      return this.answer(exchange, 200, body, { 'content-type': step.contentType ?? 'application/json' });
    }

    if ('status' in step) {
      record.kind = 'status';
      const body = step.body === undefined ? (step.status >= 400 ? defaultErrorBody(step.status) : {}) : step.body;
      return this.answer(exchange, step.status, body, step.headers);
    }

    if ('content' in step) {
      record.kind = 'answer';
      const content = typeof step.content === 'string' ? step.content : JSON.stringify(step.content);
      const promptChars = record.messages.reduce((n, m) => n + messageText(m).length, 0);
      const prompt_tokens = step.usage?.prompt_tokens ?? estimateTokens(promptChars);
      const completion_tokens = step.usage?.completion_tokens ?? estimateTokens(content.length);
      const details = step.usage?.prompt_tokens_details;
      const usage = { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens, ...(details ? { prompt_tokens_details: details } : {}) };
      if (record.body.stream === true) return this.stream(exchange, record, step, content, usage);
      const completion = {
        id: `chatcmpl-scripted-${record.id}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: record.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content, refusal: null },
            logprobs: null,
            finish_reason: step.finishReason ?? 'stop',
          },
        ],
        usage,
        system_fingerprint: null,
      };
      return this.answer(exchange, 200, completion, step.headers);
    }

    record.kind = 'step-error';
    return this.answer(exchange, 400, {
      error: { message: `ScriptedModelServer: invalid step for model '${record.model}': ${JSON.stringify(step)}`, type: 'scripted_model_server_error', code: 'invalid_step' },
    });
  }

  /**
   * Sends an answer as Server-Sent Events, as OpenAI does for `stream: true`:
   *   data: {chunk with delta.role}   data: {delta.content} × n   data: {delta {}, finish_reason}
   *   [data: {choices: [], usage}]    data: [DONE]
   * With `stream_options.include_usage` every chunk carries `usage: null` and the extra last
   * chunk the usage; without it there is no `usage` key at all. The request stays in flight
   * until `[DONE]`; a client that goes away mid-stream is recorded as an abort.
   */
  private async stream(exchange: Exchange, record: RecordedRequest, step: AnswerStep, content: string, usage: Usage & { total_tokens: number }): Promise<void> {
    const { res } = exchange;
    const { signal } = exchange.controller;
    if (exchange.answered || signal.aborted || res.destroyed) return;
    const options = record.body.stream_options;
    const includeUsage = isObject(options) && options.include_usage === true;

    record.streamed = true;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': `req_scripted_${record.id}`,
      ...step.headers,
    });
    res.flushHeaders();

    const base = {
      id: `chatcmpl-scripted-${record.id}`,
      object: 'chat.completion.chunk',
      created: Math.floor(Date.now() / 1000),
      model: record.model,
      system_fingerprint: null,
    };
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
      `data: ${JSON.stringify({ ...base, choices, ...(includeUsage ? { usage: null } : {}), ...extra })}\n\n`;
    const choice = (delta: Record<string, unknown>, finishReason: string | null = null): Record<string, unknown> => ({
      index: 0,
      delta,
      logprobs: null,
      finish_reason: finishReason,
    });

    const events = [chunk([choice({ role: 'assistant', content: '', refusal: null })])];
    for (const piece of splitContent(content, step.chunks)) events.push(chunk([choice({ content: piece })]));
    events.push(chunk([choice({}, step.finishReason ?? 'stop')]));
    if (includeUsage) events.push(chunk([], { usage }));
    events.push('data: [DONE]\n\n');

    const pause = Math.max(0, step.chunkDelayMs ?? 0);
    const last = Math.min(events.length, step.endStreamAfter ?? step.dropStreamAfter ?? events.length);
    for (let i = 0; i < last; i++) {
      if (i > 0 && pause > 0 && !(await sleep(pause, signal))) return; // client gone: recorded by the close listener
      if (signal.aborted || res.destroyed) return;
      res.write(events[i]);
    }
    if (step.dropStreamAfter !== undefined && step.endStreamAfter === undefined) {
      // Let the written events reach the client, then reset: the close listener records the abort.
      await new Promise<void>((resolve) => res.write('', () => resolve()));
      res.destroy();
      return;
    }
    exchange.answered = true;
    res.end();
    record.status = 200;
    record.finishedAt = Date.now();
    this.leave(record.model);
    this.emit('response', record);
  }

  private answerModels(exchange: Exchange, path: string): void {
    const created = Math.floor(Date.now() / 1000);
    const toModel = (id: string): Record<string, unknown> => ({ id, object: 'model', created, owned_by: 'scripted' });
    const known = [...new Set([...this.queues.keys(), ...this.defaults.keys()])].sort();
    if (path === '/models') {
      return this.answer(exchange, 200, { object: 'list', data: known.map(toModel) });
    }
    const id = decodeURIComponent(path.slice('/models/'.length));
    if (known.includes(id)) return this.answer(exchange, 200, toModel(id));
    return this.answer(exchange, 404, { error: { message: `The model '${id}' does not exist (scripted).`, type: 'invalid_request_error', code: 'model_not_found' } });
  }

  /** Writes a response unless the client is gone; a string body is sent verbatim, anything else as JSON. */
  private answer(exchange: Exchange, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const { res, record } = exchange;
    if (exchange.answered || exchange.controller.signal.aborted || res.destroyed) return;
    exchange.answered = true;
    const requestId = `req_scripted_${record?.id ?? 0}`;
    if (typeof body === 'string') {
      const contentType = headers['content-type'] ?? (isJsonText(body) ? 'application/json' : 'text/plain; charset=utf-8');
      send(res, status, body, { 'x-request-id': requestId, ...headers, 'content-type': contentType });
    } else {
      send(res, status, JSON.stringify(body), { 'content-type': 'application/json', 'x-request-id': requestId, ...headers });
    }
    if (record) {
      record.status = status;
      record.finishedAt = Date.now();
      this.leave(record.model);
      this.emit('response', record);
    }
  }

  private markAborted(exchange: Exchange): void {
    if (exchange.controller.signal.aborted) return;
    exchange.controller.abort();
    const { record } = exchange;
    if (!record) return; // closed before the body was parsed: never counted
    record.aborted = true;
    record.finishedAt = Date.now();
    this.leave(record.model);
    this.emit('aborted', record);
  }

  private enter(model: string): void {
    this.inFlightTotal++;
    this.maxInFlightTotal = Math.max(this.maxInFlightTotal, this.inFlightTotal);
    const n = (this.inFlightByModel.get(model) ?? 0) + 1;
    this.inFlightByModel.set(model, n);
    this.maxInFlightByModel.set(model, Math.max(this.maxInFlightByModel.get(model) ?? 0, n));
  }

  private leave(model: string): void {
    this.inFlightTotal--;
    this.inFlightByModel.set(model, (this.inFlightByModel.get(model) ?? 1) - 1);
  }
}

// ---------------------------------------------------------------------------
// Low-level HTTP helpers
// ---------------------------------------------------------------------------

/**
 * Splits content into `count` pieces of about equal length, never inside a surrogate pair
 * (default: about one piece per 16 characters, at most 64). Empty content gives no piece.
 */
function splitContent(content: string, count?: number): string[] {
  if (content === '') return [];
  const chars = Array.from(content);
  const wanted = count === undefined ? Math.min(64, Math.ceil(chars.length / 16)) : Math.floor(count);
  const n = Math.max(1, Math.min(wanted, chars.length));
  const pieces: string[] = [];
  for (let i = 0; i < n; i++) {
    pieces.push(chars.slice(Math.floor((i * chars.length) / n), Math.floor(((i + 1) * chars.length) / n)).join(''));
  }
  return pieces;
}

function errorBody(message: string, type: string, code: string | null = null): { error: { message: string; type: string; code: string | null } } {
  return { error: { message, type, code } };
}

function isJsonText(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function send(res: http.ServerResponse, status: number, text: string, headers: Record<string, string>): void {
  const buf = Buffer.from(text, 'utf8');
  res.writeHead(status, { ...headers, 'content-length': String(buf.length) });
  res.end(buf);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  send(res, status, JSON.stringify(body), { 'content-type': 'application/json' });
}

/** Reads the whole body as UTF-8; null if the client went away or the body is too large. */
function readBody(req: http.IncomingMessage): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (value: string | null): void => {
      if (done) return;
      done = true;
      resolve(value);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        finish(null);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => finish(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => finish(null));
    req.on('close', () => finish(null)); // no-op if 'end' already resolved
  });
}
