"""The load generator: closed-loop users, open-loop arrivals and recorded traces, sent to any
target (an endpoint, a managed server or an in-process model) and timed request by request.

``qeval.perf`` runs it level by level and turns what it measures into perf.json; this package
knows nothing of reports (it never imports :mod:`qeval.perf`).
"""
