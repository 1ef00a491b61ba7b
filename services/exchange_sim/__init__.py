"""A local Kalshi exchange (WS + REST + Odds API) that tells the truth.

Modules: ``catalog``/``teams`` (what is listed), ``activity``/``lifecycle`` (the market
model, pure and seeded), ``state`` (books and statistics, changed only by emissions),
``frames`` (Kalshi's wire format), ``session`` (one connection's command protocol),
``hub``/``connection`` (fan-out and socket writing), ``ws``/``rest``/``odds`` (HTTP
endpoints), ``faults``, ``truth`` (ground truth), ``server`` (:class:`ExchangeSim`),
``worker`` (the ``sim`` worker) and ``testing`` (helpers for tests against it).
"""
