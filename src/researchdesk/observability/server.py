"""A worker process's own metrics endpoint: `prometheus_client`'s HTTP server, on a thread."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import start_http_server

from researchdesk.observability.metrics import Metrics


def serve_metrics(metrics: Metrics, host: str, port: int) -> tuple[int, Callable[[], None]]:
    """Serve `metrics` at `http://host:port/metrics` (any path answers); the port it listens on
    (`port` 0 picks a free one) and the function that stops it."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return int(server.server_port), stop
