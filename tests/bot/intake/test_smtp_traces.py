"""An email is one trace too: the SMTP listener's span is the parent of the job it queues."""

from __future__ import annotations

import json

import redis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bot.observability.tracing import TRACE_OPTION, build_tracing
from testbed.markers import new_marker
from tests.bot.intake.test_smtp_intake import mail, send
from tests.connectors.email.support import (
    DB,
    RELAXED_LIMITS,
    RunningListener,
    Tenant,
    email_settings,
    request_rows,
)
from tests.support.processes import wait_for

pytest_plugins = ["tests.connectors.email.fixtures"]


def test_the_job_an_email_queues_continues_the_listeners_trace(
    email_database_url: str,
    email_tenant: Tenant,
    email_db: DB,
    redis_url: str,
    queue_namespace: str,
) -> None:
    namespace = f"{queue_namespace}-smtp-traces-{new_marker(6)}"
    settings = email_settings(email_database_url, redis_url, namespace, **RELAXED_LIMITS)
    exporter = InMemorySpanExporter()
    listener = RunningListener(settings, tracer=build_tracing(settings, "t", exporter).tracer)
    listener.start()
    client = redis.Redis.from_url(redis_url)
    try:
        codes = send(listener.port, [email_tenant.inbox], mail(email_tenant.inbox))
        assert codes == {}  # every recipient accepted
        wait_for(
            lambda: [r["status"] for r in request_rows(email_db, email_tenant.id)] == ["queued"],
            message="the email's request queued",
        )
        request_id = request_rows(email_db, email_tenant.id)[0]["id"]

        [span] = [s for s in exporter.get_finished_spans() if s.name == "smtp.message"]
        assert span.attributes is not None
        assert span.attributes["smtp.reply_code"] == 250
        assert span.attributes["smtp.recipients"] == 1
        queued = [
            json.loads(m)
            for key in client.scan_iter(f"{namespace}*")
            if client.type(key) == b"hash"
            for m in client.hvals(key)
        ]
        [message] = [m for m in queued if m["args"] == [request_id]]
        carried = TraceContextTextMapPropagator().extract(message["options"][TRACE_OPTION])
        parent = get_current_span(carried).get_span_context()
        assert (parent.trace_id, parent.span_id) == (
            span.context.trace_id,
            span.context.span_id,
        )
    finally:
        listener.stop()
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)
