"""Prometheus metrics of a worker: jobs by verdict, their duration and queue wait."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from rebuilder.verdict import FileResult

_DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_WAIT_BUCKETS = (0.1, 1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class WorkerMetrics:
    """A :class:`~rebuilder.worker.runner.JobObserver` that feeds Prometheus."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.jobs = Counter(
            "rebuilder_jobs",
            "Rebuild attempts finished, by verdict and failure reason class.",
            ["verdict", "reason_class"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "rebuilder_job_seconds",
            "Wall time of one rebuild attempt.",
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "rebuilder_queue_wait_seconds",
            "Time from an attempt's request to its start.",
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.busy = Gauge(
            "rebuilder_worker_busy", "Rebuilds running in this worker.", registry=self.registry
        )

    def job_finished(self, result: FileResult, *, queued_seconds: float | None) -> None:
        reason = result.reason_class.value if result.reason_class else ""
        self.jobs.labels(verdict=result.verdict.value, reason_class=reason).inc()
        self.duration.observe(result.seconds)
        if queued_seconds is not None:
            self.queue_wait.observe(max(0.0, queued_seconds))

    def serve(self, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from other hosts
        """Expose the metrics over HTTP (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)
