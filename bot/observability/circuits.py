"""The state of each model provider's circuit breaker, read when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.llm.providers import ProviderChain

STATES = ("closed", "half_open", "open")


class CircuitCollector(Collector):
    """`chatops_llm_circuit_state{provider, state}` is 1 for the state the breaker is in."""

    def __init__(self, chain: ProviderChain) -> None:
        self.chain = chain

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "chatops_llm_circuit_state",
            "1 for the state each provider's circuit breaker is in, 0 for the others.",
            labels=["provider", "state"],
        )
        for provider in self.chain.providers:
            current = provider.breaker.state
            for state in STATES:
                family.add_metric([provider.name, state], 1.0 if state == current else 0.0)
        yield family
