"""Serving a registry to Prometheus: on the listener's own aiohttp app, or on a port of
its own for processes without an HTTP server (workers, the SMTP listener)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import start_http_server as _start_http_server

from core.errors import StartupError

log = structlog.get_logger(__name__)


def metrics_response(registry: CollectorRegistry) -> web.Response:
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """`/metrics` (any path, in fact) on host:port, from a daemon thread."""
    try:
        server, thread = _start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise StartupError(f"cannot serve metrics on {host}:{port}: {exc}") from None
    running = MetricsServer(server, thread)
    log.info("metrics.serving", host=host, port=running.port)
    return running
