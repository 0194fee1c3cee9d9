"""Webhooks: event shapes, Standard Webhooks signatures, the endpoint address rule, sending.

Pure parts with no database and no web framework: the store keeps endpoints and deliveries,
the API registers endpoints, and the worker's delivery loop (`worker.deliveries`) sends.
"""
