"""`chatops worker`: a Dramatiq worker process running the agent loop.

Everything the jobs need is built here once, then handed to the actors explicitly.
"""

from __future__ import annotations

import signal
import threading
from decimal import Decimal
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.redis import RedisBroker

from bot.agent.knowledge import EmptyKnowledge, NoTools
from bot.agent.run_request import WorkerDeps, fail_request, run_request
from bot.db import open_pool
from bot.llm.pricing import DEFAULT_PRICES_PER_MTOK
from bot.llm.providers import build_chain
from bot.llm.structured import StructuredLLM
from bot.queue.broker import build_broker
from bot.queue.jobs import AGENT_QUEUE, REQUEST_FAILED, RUN_REQUEST, RUN_REQUEST_OPTIONS
from bot.settings import Settings
from connectors.slack.web_client import make_web_client

log = structlog.get_logger(__name__)


def build_worker_deps(settings: Settings) -> WorkerDeps:
    providers = settings.llm_providers
    llm = None
    if providers:
        chain = build_chain(
            [(p.name, p.base_url, p.api_key.get_secret_value(), p.model) for p in providers],
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            circuit_failures=settings.llm_circuit_failures,
            circuit_reset=settings.llm_circuit_reset_seconds,
        )
        llm = StructuredLLM(chain, malformed_retries=settings.llm_malformed_retries)
    else:
        log.warning("llm.offline_mode", hint="set OPENAI_BASE_URL or OPENAI_API_KEY")
    prices: dict[str, tuple[Decimal, Decimal]] = {**DEFAULT_PRICES_PER_MTOK, **settings.llm_prices}
    return WorkerDeps(
        pool=open_pool(settings.database_url, max_size=settings.worker_threads + 2),
        llm=llm,
        retriever=EmptyKnowledge(),
        tools=NoTools(),
        slack_client=lambda token: make_web_client(token, settings.slack_api_url),
        max_steps=settings.agent_max_steps,
        prices=prices,
    )


def declare_actors(broker: dramatiq.Broker, deps: WorkerDeps) -> None:
    def run(request_id: int) -> None:
        run_request(deps, request_id)

    def failed(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
        request_id = message["args"][0]
        log.error("request.retries_exhausted", request_id=request_id, **retry_info)
        fail_request(deps, request_id, "something went wrong on our side while answering")

    dramatiq.Actor(
        run,
        broker=broker,
        actor_name=RUN_REQUEST,
        queue_name=AGENT_QUEUE,
        priority=0,
        options=RUN_REQUEST_OPTIONS,
    )
    dramatiq.Actor(
        failed,
        broker=broker,
        actor_name=REQUEST_FAILED,
        queue_name=AGENT_QUEUE,
        priority=0,
        # fail_request never raises: it ends by recording the failure in Postgres.
        options={"max_retries": 0, "time_limit": 60_000},
    )


def run_worker(settings: Settings) -> None:
    broker: RedisBroker = build_broker(settings)
    deps = build_worker_deps(settings)
    declare_actors(broker, deps)
    worker = dramatiq.Worker(broker, queues={AGENT_QUEUE}, worker_threads=settings.worker_threads)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    log.info("worker.started", threads=settings.worker_threads, namespace=settings.queue_namespace)
    stop.wait()
    log.info("worker.stopping")
    worker.stop()
    broker.close()
    deps.pool.close()
