"""OpenTelemetry tracing exported over OTLP/HTTP (the ``otel`` extra, imported only when
``ALGO_OTEL__ENDPOINT`` is set). Every HTTP request becomes a server span; log lines carry its
trace_id/span_id."""

from __future__ import annotations

from typing import Any


def install_tracing(app: Any, *, endpoint: str, service_name: str, sample_ratio: float) -> Any:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces"), schedule_delay_millis=500
        )
    )
    trace.set_tracer_provider(provider)
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider, exclude_spans=["receive", "send"])
    app.state.tracer_provider = provider
    return provider
