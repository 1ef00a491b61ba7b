"""The order-book core (pure: no sockets, clocks or metrics), shared by every book kxfeed builds:
the orderbook worker's live books and the point-in-time books rebuilt from the store
(:mod:`shared.book.at`), so both apply a snapshot and its deltas the same way."""
