"""OpenTelemetry traces, off by default: a span per Slack request, per job (the queue
hop, parented to the request that queued it), per agent step (retrieval is the
`retrieve` step, tool calls the `act` step and the `execute_action` job) and per model call.

Each process builds one `Tracing` at start and passes its tracer to what it traces;
nothing sets OpenTelemetry's global provider. The trace context crosses the queue as a
W3C `traceparent` in the Dramatiq message's options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.trace import NoOpTracer, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from core.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACE_OPTION = "trace_context"  # key in a Dramatiq message's options
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass
class Tracing:
    tracer: Tracer = field(default_factory=NoOpTracer)
    provider: TracerProvider | None = None

    def shutdown(self) -> None:
        """Export what is buffered; called once as the process stops."""
        if self.provider is not None:
            self.provider.shutdown()


def build_tracing(
    settings: Settings, service_name: str, exporter: SpanExporter | None = None
) -> Tracing:
    """A no-op tracer unless OTEL_TRACES_ENABLED (or a test passes its own exporter)."""
    if exporter is None and not settings.otel_traces_enabled:
        return Tracing()
    # Imported here: the SDK and the OTLP exporter (protobuf) are a fifth of a second of
    # every process's start, for nothing while tracing is off (the default).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        # OTLP over HTTP; the endpoint (and OTEL_EXPORTER_OTLP_HEADERS etc.) follow the
        # standard OpenTelemetry variables when OTEL_EXPORTER_OTLP_ENDPOINT is unset here.
        otlp = OTLPSpanExporter(
            endpoint=_traces_url(settings.otel_exporter_otlp_endpoint)
            if settings.otel_exporter_otlp_endpoint
            else None
        )
        provider.add_span_processor(BatchSpanProcessor(otlp))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider.get_tracer("chatops-agent"), provider)


def current_trace_carrier() -> dict[str, str]:
    """The current span's context as message-option-sized headers; empty outside a span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def context_from_carrier(carrier: Mapping[str, str] | None) -> Context:
    return _PROPAGATOR.extract(dict(carrier or {}))


def _traces_url(endpoint: str) -> str:
    # The standard variable names the collector's base URL; the HTTP exporter, given an
    # endpoint explicitly, wants the full path.
    return (
        endpoint
        if endpoint.rstrip("/").endswith("/v1/traces")
        else endpoint.rstrip("/") + "/v1/traces"
    )
