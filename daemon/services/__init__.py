"""Services: one module per use case (poll round, ingest, anomaly run, billing run, reminders, ...).

The CLI, the API, the web console and the daemon's lifecycle call these; they call the store
and billing/'s rules (docs/adr/0006-floors.md).
"""
