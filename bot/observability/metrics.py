"""The Prometheus series the product exports, created in one registry per process.

Nothing is registered on prometheus_client's global registry: each process entry point
creates a `Metrics` and hands it to what it instruments, so tests can read their own
registry and several workers never share state. Which process fills which series:

- `chatops serve`: Slack events, ack latency, and (at each scrape, see `stored_state`) the
  queues, approvals and guardrail flags, which live in Redis and Postgres.
- `chatops worker`: jobs, drafts, agent steps, model calls, tokens, cost, circuit
  breakers (see `circuits`), emails sent.
- `chatops smtp`: emails received.

Labels stay bounded: event types are mapped onto a fixed set, tenants are ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds. Slack retries an event it has not seen acknowledged within 3 s.
ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0)
# Seconds, for jobs, drafts and model calls: the draft SLO is 10 s.
WORK_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0, 10.0, 15.0, 30.0, 60.0, 180.0)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    slack_events_received: Counter  # type
    slack_events_acked: Counter  # type, status (the HTTP status Slack got)
    slack_ack_seconds: Histogram  # type
    jobs: Counter  # queue, actor, outcome (ok, failed, skipped)
    job_seconds: Histogram  # queue, actor
    job_wait_seconds: Histogram  # queue: enqueued to started
    draft_seconds: Histogram  # source: request received to reply written
    draft_seconds_without_slow_llm: Histogram  # source: the same, minus model time over 8 s
    agent_steps: Counter  # kind
    llm_calls: Counter  # provider, model, outcome
    llm_call_seconds: Histogram  # provider
    llm_tokens: Counter  # tenant, model, direction (prompt, completion)
    llm_cost_usd: Counter  # tenant, model
    emails_received: Counter  # outcome (received, ignored, failed, duplicate, deferred)
    emails_sent: Counter  # transport, outcome (sent, already_sent, unknown, failed)

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        registry = registry if registry is not None else CollectorRegistry()

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=buckets)

        return cls(
            registry=registry,
            slack_events_received=counter(
                "chatops_slack_events_received", "Slack requests received.", ("type",)
            ),
            slack_events_acked=counter(
                "chatops_slack_events_acked",
                "Slack requests answered, by HTTP status.",
                ("type", "status"),
            ),
            slack_ack_seconds=histogram(
                "chatops_slack_ack_seconds",
                "Time from a Slack request arriving to its HTTP response.",
                ("type",),
                ACK_BUCKETS,
            ),
            jobs=counter("chatops_jobs", "Jobs a worker finished.", ("queue", "actor", "outcome")),
            job_seconds=histogram(
                "chatops_job_seconds", "Time a job ran.", ("queue", "actor"), WORK_BUCKETS
            ),
            job_wait_seconds=histogram(
                "chatops_job_wait_seconds",
                "Time from a job being queued to a worker starting it.",
                ("queue",),
                WORK_BUCKETS,
            ),
            draft_seconds=histogram(
                "chatops_draft_seconds",
                "Time from a request being received to its reply being written.",
                ("source",),
                WORK_BUCKETS,
            ),
            draft_seconds_without_slow_llm=histogram(
                "chatops_draft_seconds_without_slow_llm",
                "chatops_draft_seconds minus the request's model time beyond 8 s (the SLO's measure).",
                ("source",),
                WORK_BUCKETS,
            ),
            agent_steps=counter("chatops_agent_steps", "Agent loop steps computed.", ("kind",)),
            llm_calls=counter(
                "chatops_llm_calls",
                "Requests to language model providers, by outcome.",
                ("provider", "model", "outcome"),
            ),
            llm_call_seconds=histogram(
                "chatops_llm_call_seconds",
                "Time a model request took.",
                ("provider",),
                WORK_BUCKETS,
            ),
            llm_tokens=counter(
                "chatops_llm_tokens",
                "Tokens sent to and received from models.",
                ("tenant", "model", "direction"),
            ),
            llm_cost_usd=counter(
                "chatops_llm_cost_usd", "Model cost in US dollars.", ("tenant", "model")
            ),
            emails_received=counter(
                "chatops_emails_received", "Emails the SMTP listener took.", ("outcome",)
            ),
            emails_sent=counter(
                "chatops_emails_sent",
                "Approved emails handed to a transport.",
                ("transport", "outcome"),
            ),
        )

    def count_step(self, kind: str) -> None:
        self.agent_steps.labels(kind).inc()

    def record_llm_call(
        self,
        *,
        tenant_id: int,
        provider: str,
        model: str,
        outcome: str,
        prompt_tokens: int,
        completion_tokens: int,
        latency_ms: int,
        cost_usd: Decimal,
    ) -> None:
        self.llm_calls.labels(provider, model, outcome).inc()
        if outcome != "circuit_open":  # no request was made
            self.llm_call_seconds.labels(provider).observe(latency_ms / 1000)
        tenant = str(tenant_id)
        if prompt_tokens:
            self.llm_tokens.labels(tenant, model, "prompt").inc(prompt_tokens)
        if completion_tokens:
            self.llm_tokens.labels(tenant, model, "completion").inc(completion_tokens)
        if cost_usd:
            self.llm_cost_usd.labels(tenant, model).inc(float(cost_usd))
