"""Prometheus metrics of the scheduler: queue depth, discoveries, poll lag, poll errors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LAG_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


class SchedulerMetrics:
    """A :class:`scheduler.loop.SchedulerObserver` that feeds Prometheus."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.queue_depth = Gauge(
            "rebuilder_queue_depth", "Attempts waiting for a worker.", registry=self.registry
        )
        self.releases = Counter(
            "rebuilder_releases_discovered", "New releases recorded.", registry=self.registry
        )
        self.poll_lag = Histogram(
            "rebuilder_poll_lag_seconds",
            "Time from a file's upload to its discovery by the scheduler.",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.polls = Counter(
            "rebuilder_polls", "Project polls, by result.", ["result"], registry=self.registry
        )

    def release_recorded(self, lag_seconds: float | None) -> None:
        self.releases.inc()
        if lag_seconds is not None:
            self.poll_lag.observe(max(0.0, lag_seconds))

    def ticked(self, *, polled: int, failed: int, queue_depth: int) -> None:
        self.polls.labels(result="ok").inc(polled)
        self.polls.labels(result="error").inc(failed)
        self.queue_depth.set(queue_depth)

    def serve(self, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - scraped remotely
        """Expose the metrics over HTTP (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)
