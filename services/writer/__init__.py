"""The storage writer: every durable bus message stored exactly once, through any failure.

Pure core: ``rows`` (message -> rows), ``core`` (stream positions, buffer, batches),
``journals`` (replay source, consumer cursor). ``batches`` writes one transaction per batch
through the database package ``shared.store`` (schema, SQL, engines, migrations). Shell:
``worker`` (the actor), ``metrics``. Deterministic test streams: ``tests/support/synth``.
"""
