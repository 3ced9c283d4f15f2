"""Temporal plumbing: client, converter, task queues, ids, retry policies, search attributes."""
