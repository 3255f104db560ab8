-- The trace of each probe (docs/tracing.md): the OpenTelemetry trace id (32 hex digits) when
-- traces were on and the probe was sampled, else NULL. `mcp-exporter history` lists it beside
-- the failed probes, so a failure leads to its trace in the tracing backend.

ALTER TABLE probe_results ADD COLUMN trace_id TEXT;
