// Optional OpenTelemetry traces (off by default): with WEAVER_OTEL_ENDPOINT (an OTLP/HTTP
// collector, e.g. http://collector:4318) or the standard OTEL_EXPORTER_OTLP_ENDPOINT /
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, the worker runs the Temporal SDK's OpenTelemetry
// plugin: a span per workflow run and per activity, linked through Temporal's headers.
// Workflow spans need the tracing interceptors inside the workflow bundle: a worker that bundles
// from source has them; a prebuilt bundle (WEAVER_WORKFLOW_BUNDLE) gets activity spans only.
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryPlugin } from '@temporalio/interceptors-opentelemetry';

export interface Tracing {
  plugin: OpenTelemetryPlugin;
  /** Where spans go, for the banner. */
  endpoint: string;
  /** Sends the spans still buffered; call once the workers stopped. */
  shutdown(): Promise<void>;
}

/** The tracing plugin for the workers, sending to `url` (tracesUrl in ./telemetry). Loaded only when on: its packages cost a start nothing otherwise. */
export function startTracing(url: string, env: NodeJS.ProcessEnv = process.env): Tracing {
  const resource = new Resource({ 'service.name': env.OTEL_SERVICE_NAME?.trim() || 'weaver-worker' });
  // OTEL_EXPORTER_OTLP_HEADERS and the like are read by the exporter itself.
  const spanProcessor = new BatchSpanProcessor(new OTLPTraceExporter({ url }));
  // Activity spans use this tracer; workflow spans leave the sandbox through the plugin's sink.
  const provider = new BasicTracerProvider({ resource, spanProcessors: [spanProcessor] });
  // Registered globally for its propagator (the W3C trace context Temporal's headers carry from a
  // workflow to its activities) and a context manager that follows async calls: without them
  // every activity span would start a trace of its own.
  provider.register({ contextManager: new AsyncLocalStorageContextManager() });
  const plugin = new OpenTelemetryPlugin({ resource, spanProcessor, tracer: provider.getTracer('weaver') });
  return { plugin, endpoint: url, shutdown: () => provider.shutdown() };
}
