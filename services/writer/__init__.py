"""The storage writer: every durable bus message stored exactly once, through any failure.

Pure core: ``rows`` (message -> rows), ``core`` (stream positions, buffer, batches),
``journals`` (replay source, consumer cursor). Database: ``schema`` + ``types`` (tables),
``migrations`` + ``migrate`` (Alembic), ``engine``, ``sql`` + ``store`` (one transaction
per batch), ``queries`` (``kxfeed db``). Shell: ``worker`` (the actor), ``metrics``.
``synth`` makes deterministic streams for the tests and ``bench/writer.py``.
"""
