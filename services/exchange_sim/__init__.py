"""A local Kalshi exchange (WS + REST + Odds API) that tells the truth.

Modules: ``catalog``/``teams`` (what is listed), ``activity``/``lifecycle`` (the market
model, pure and seeded), ``state`` (books and statistics, changed only by emissions),
``frames`` (Kalshi's wire format), ``session`` (one connection's command protocol),
``hub``/``connection`` (fan-out and socket writing), ``ws``/``rest``/``odds`` (HTTP
endpoints), ``faults``, ``truth`` (ground truth), ``server`` (:class:`ExchangeSim`),
``worker`` (the ``sim`` worker) and ``testing`` (helpers for tests against it).

Replay (``kxfeed replay``): the same front end driven by a recorded session instead of the
engine (``source`` is what either provides): ``replay_record`` (the journals read back),
``replay_catalog`` (recorded markets as the catalog), ``replay_frames`` (recorded messages'
bodies), ``replay_source`` (the emissions and their pacing), ``replay`` (:class:`ReplayServer`).
"""
