"""What the service tells its operators: Prometheus metrics and structured logs.

Imports no business layer that holds state (`api`, `store`, `worker`), so that every part of the
service, the agent and the tools included, may record into it.
"""
