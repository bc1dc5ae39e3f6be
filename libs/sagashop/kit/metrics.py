"""Prometheus metrics every part shares: each part's own registry is served on SAGASHOP_METRICS_PORT (the
gateway serves it on /metrics too). Every metric of a part carries its SAGASHOP_VERSION as the `version` label."""

import logging
from collections.abc import Iterator

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .breaker import BREAKERS
from .settings import Settings

log = logging.getLogger(__name__)
STATES = ("closed", "half-open", "open")


class BreakerCollector(Collector):
    """The state of every circuit breaker of this process, read when scraped."""

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("sagashop_circuit_breaker_state", "1 for the state the circuit to a dependency is in",
                                  labels=["dependency", "state", "version"])
        failures = GaugeMetricFamily("sagashop_circuit_breaker_failures",
                                     "transient failures counted toward opening the circuit",
                                     labels=["dependency", "version"])
        for name, breaker in sorted(BREAKERS.items()):
            for each in STATES:
                state.add_metric([name, each, version()], 1.0 if breaker.state == each else 0.0)
            failures.add_metric([name, version()], breaker.failures)
        yield state
        yield failures


_collector = BreakerCollector()
_version: str = Settings.model_fields["version"].default


def version() -> str:
    """This process's version, the `version` label of its metrics (set by install())."""
    return _version


def install(settings: Settings) -> None:
    """Registers the shared collectors (once per process) and serves the registry if a port is set."""
    global _version
    _version = settings.version
    if _collector not in REGISTRY._collector_to_names:  # noqa: SLF001 - no public "is registered"
        REGISTRY.register(_collector)
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.bind)
        except OSError as e:  # metrics are worth a warning, never the part itself
            log.error("cannot serve metrics on port %d: %s", settings.metrics_port, e)
