"""Prometheus metrics. With several worker processes (``--workers``) the CLI points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before they start, and /metrics sums all workers."""

from __future__ import annotations

import os

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest)

REQUESTS = Counter("pluralign_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("pluralign_http_request_seconds", "Request latency", ["route"],
                    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
RANK_BATCH = Histogram("pluralign_rank_batch_size", "Rank requests scored in one batch",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128))
CHOICE_GROUP = Histogram("pluralign_choice_group_size", "Choices stored in one transaction (group commit)",
                         buckets=(1, 2, 4, 8, 16, 32, 64))
CHOICES = Counter("pluralign_choices_total", "Choices posted", ["result"])  # stored / replayed
RANK_PATH = Counter("pluralign_rank_answers_total", "Rank answers by path: fast (before routing) or route",
                    ["path"])  # fastpath.py
Z_CACHE = Counter("pluralign_z_cache_total", "z cache lookups", ["result"])  # hit / miss
GENERATIONS = Counter("pluralign_generations_total", "Answers generated", ["steered_by"])  # choices/weights/none
GENERATED_TOKENS = Counter("pluralign_generated_tokens_total", "Tokens generated")
GENERATE_SECONDS = Histogram("pluralign_generate_seconds", "Generation time, queueing included",
                             buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
GENERATE_REJECTED = Counter("pluralign_generate_rejected_total", "Policy calls refused: pool full (503)")


def render() -> tuple[bytes, str]:
    """The metrics page (all workers' when in multi-process mode) and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
