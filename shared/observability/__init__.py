"""Observability: structured logging, Prometheus metrics, the health/readiness HTTP side and the status snapshot."""
