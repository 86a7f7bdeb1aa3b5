"""Prometheus metrics, in a registry of the app's own (no process-global state)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry
    inbound_messages: Counter
    duplicates: Counter
    outbound_messages: Counter
    bot_turn_seconds: Histogram
    bot_failures: Counter
    dead_letters: Counter
    deferred_turns: Gauge
    http_requests: Counter
    http_request_seconds: Histogram
    webchat_sockets: Gauge
    kb_search_seconds: Histogram
    handoffs: Counter
    handoff_wait_seconds: Histogram
    csat_scores: Counter
    inbox_sockets: Gauge


def build_metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        inbound_messages=Counter(
            "gateway_inbound_messages_total", "Citizen messages received", ["channel"], registry=registry
        ),
        duplicates=Counter(
            "gateway_duplicate_deliveries_total", "Redelivered inbound messages suppressed", ["channel"],
            registry=registry,
        ),
        outbound_messages=Counter(
            "gateway_outbound_messages_total", "Messages sent to citizens", ["channel", "sender"], registry=registry
        ),
        bot_turn_seconds=Histogram(
            "gateway_bot_turn_seconds", "Time Rasa took for one turn", registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        bot_failures=Counter("gateway_bot_failures_total", "Turns Rasa could not answer", registry=registry),
        dead_letters=Counter(
            "gateway_dead_letter_turns_total", "Citizen messages the bot failed on repeatedly, set aside for a person",
            registry=registry,
        ),
        deferred_turns=Gauge(
            "gateway_deferred_turns", "Citizen messages waiting for Rasa to come back", registry=registry
        ),
        http_requests=Counter(
            "gateway_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=registry
        ),
        http_request_seconds=Histogram(
            "gateway_http_request_seconds", "HTTP request duration", ["route"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        webchat_sockets=Gauge("gateway_webchat_sockets", "Open web-chat sockets", registry=registry),
        kb_search_seconds=Histogram(
            "gateway_kb_search_seconds", "Knowledge-base search time", registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25),
        ),
        handoffs=Counter(
            "gateway_handoffs_total", "Conversations handed to people", ["trigger"], registry=registry
        ),
        handoff_wait_seconds=Histogram(
            "gateway_handoff_wait_seconds", "How long citizens waited for a person (pending until claimed)",
            registry=registry, buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 28800),
        ),
        csat_scores=Counter("gateway_csat_scores_total", "Satisfaction answers (1–5)", ["score"], registry=registry),
        inbox_sockets=Gauge("gateway_inbox_sockets", "Open agent-inbox sockets", registry=registry),
    )
