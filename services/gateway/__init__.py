"""The gateway: kxfeed's data over HTTP for browsers and programs that cannot speak ZeroMQ.

A REST JSON API under ``/api/v1`` (markets, history from the database, live books and scans
from the orderbook's control socket, gaps, signals, the supervisor's status), its OpenAPI 3.1
document, a live WebSocket stream (``/api/v1/stream``) and a static web page at ``/``.
``worker.py`` is the actor shell; the rest is one module per responsibility.
"""
