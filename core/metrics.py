"""The Prometheus series the product exports, created in one registry per process.

Nothing is registered on prometheus_client's global registry: each process entry point
creates a `Metrics` and hands it to what it instruments, so tests can read their own
registry and several workers never share state. Which process fills which series:

- `chatops serve`: Slack events, ack latency, 👍 / 👎 on answers, and (at each scrape, see
  `stored_state`) the queues, approvals and guardrail flags, which live in Redis and
  Postgres.
- `chatops worker`: jobs, drafts, answers (and how many said "not found"), approval
  decisions and edits, agent steps, model calls, tokens, cost, circuit breakers (see
  `circuits`), emails sent.
- `chatops smtp`: emails received.

Labels stay bounded: event types are mapped onto a fixed set, tenants are ids, templates
are the agent templates the deployment ships (templates/*.yaml), "default" for runs under
none and "other" for a name that does not look like one (`template_label`).

The quality row of the Grafana dashboard reads the per-template series: 👍 share
(answer_ratings), "not found" share (answers), rejection and edit rates (approval_decisions,
approval_edits). Each counts an event once, in the process where it happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds. Slack retries an event it has not seen acknowledged within 3 s.
ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0)
# Seconds, for jobs, drafts and model calls: the draft SLO is 10 s.
WORK_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0, 10.0, 15.0, 30.0, 60.0, 180.0)

NO_TEMPLATE = "default"  # as review/feedback.py names runs under no agent template
TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def template_label(name: str | None) -> str:
    """The `template` label for a run's agent template name (None: no template)."""
    if not name:
        return NO_TEMPLATE
    return name if TEMPLATE_NAME.fullmatch(name) else "other"


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
    emails_received: Counter  # outcome (received, duplicate, deferred): at the 250, unread
    emails_sent: Counter  # transport, outcome (sent, already_sent, unknown, failed)
    answers: Counter  # template, outcome (answered, not_found)
    answer_ratings: Counter  # template, rating (up, down)
    approval_decisions: Counter  # template, decision (approved, rejected)
    approval_edits: Counter  # template

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
            answers=counter(
                "chatops_answers",
                'Answers posted, by agent template; outcome "not_found" when the answer '
                "said it could not find it.",
                ("template", "outcome"),
            ),
            answer_ratings=counter(
                "chatops_answer_ratings",
                "👍 / 👎 given to answers, by agent template (a changed rating counts as the new one).",
                ("template", "rating"),
            ),
            approval_decisions=counter(
                "chatops_approval_decisions",
                "Actions a person approved or rejected, by the agent template that proposed them.",
                ("template", "decision"),
            ),
            approval_edits=counter(
                "chatops_approval_edits",
                "Edits approvers made to proposed actions, by the agent template that proposed them.",
                ("template",),
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

    def count_answer(self, template: str | None, *, not_found: bool) -> None:
        self.answers.labels(
            template_label(template), "not_found" if not_found else "answered"
        ).inc()

    def count_rating(self, template: str | None, rating: str) -> None:
        self.answer_ratings.labels(template_label(template), rating).inc()

    def count_decision(self, template: str | None, outcome: str) -> None:
        """`outcome`: approved, rejected or edited (an edit leaves the action pending)."""
        if outcome == "edited":
            self.approval_edits.labels(template_label(template)).inc()
        else:
            self.approval_decisions.labels(template_label(template), outcome).inc()
