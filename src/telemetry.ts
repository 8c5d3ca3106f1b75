// The worker's Prometheus endpoint (WEAVER_METRICS_ADDRESS, e.g. `0.0.0.0:9464`; off when unset):
// the Temporal SDK's Runtime serves its own metrics (`temporal_*`) and Weaver's (`weaver_*`,
// src/domain/metrics.ts, recorded through the SDK's metric meter) at `/metrics` on that address.
// Traces (off by default) are src/tracing.ts; whether they are on is decided here.
import { createServer } from 'node:net';
import type { RuntimeOptions } from '@temporalio/worker';
import { HISTOGRAM_BUCKETS } from './domain/metrics';

export const METRICS_ADDRESS_ENV = 'WEAVER_METRICS_ADDRESS';
export const OTEL_ENDPOINT_ENV = 'WEAVER_OTEL_ENDPOINT';

/** The bind address, checked (`host:port`); undefined when metrics are off. A bad value throws, naming the variable. */
export function metricsAddress(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env[METRICS_ADDRESS_ENV]?.trim();
  if (!v) return undefined;
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new Error(`${METRICS_ADDRESS_ENV} must be host:port (e.g. 0.0.0.0:9464), got "${v}"`);
  return v;
}

/** The Runtime's telemetry: a Prometheus exporter when an address is given, the SDK's default otherwise. */
export function runtimeTelemetry(address: string | undefined): RuntimeOptions['telemetryOptions'] {
  if (!address) return undefined;
  return { metrics: { prometheus: { bindAddress: address, histogramBucketOverrides: HISTOGRAM_BUCKETS } } };
}

/** The banner's line about it. */
export function describeMetrics(address: string | undefined): string {
  return address ? `Prometheus metrics at http://${address}/metrics (${METRICS_ADDRESS_ENV})` : `no metrics endpoint (set ${METRICS_ADDRESS_ENV}, e.g. 0.0.0.0:9464)`;
}

/** The OTLP traces URL the environment asks for; undefined: tracing off. */
export function tracesUrl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const own = env[OTEL_ENDPOINT_ENV]?.trim();
  if (own) {
    if (!/^https?:\/\/\S+$/.test(own)) throw new Error(`${OTEL_ENDPOINT_ENV} must be an http(s) URL of an OTLP/HTTP collector (e.g. http://localhost:4318), got "${own}"`);
    return `${own.replace(/\/+$/, '')}/v1/traces`;
  }
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  return base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined;
}

/** The banner's line about traces. */
export function describeTracing(url: string | undefined): string {
  return url ? `OpenTelemetry traces to ${url}` : `no traces (set ${OTEL_ENDPOINT_ENV} for OpenTelemetry)`;
}

/**
 * `weaver doctor`'s telemetry check: off is fine; an endpoint set must parse, and the metrics
 * port must be free here (a worker already serving on it would keep the next one from starting).
 */
export async function telemetryCheck(env: NodeJS.ProcessEnv): Promise<{ ok: boolean; detail: string; fix?: string }> {
  let address: string | undefined;
  let traces: string | undefined;
  try {
    address = metricsAddress(env);
    traces = tracesUrl(env);
  } catch (err) {
    return { ok: false, detail: (err as Error).message, fix: `set ${METRICS_ADDRESS_ENV} to host:port and ${OTEL_ENDPOINT_ENV} to an http(s) URL, or unset them` };
  }
  const detail = `${describeMetrics(address)}; ${describeTracing(traces)}`;
  if (!address) return { ok: true, detail };
  const sep = address.lastIndexOf(':');
  const host = address.slice(0, sep).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(sep + 1));
  const bindError = await new Promise<string | undefined>((resolve) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    srv.listen(port, host, () => srv.close(() => resolve(undefined)));
  });
  if (!bindError) return { ok: true, detail };
  return { ok: false, detail: `${address} cannot be bound here (${bindError})`, fix: `give each worker process on a host its own ${METRICS_ADDRESS_ENV} port (e.g. 9464, 9465…)` };
}
