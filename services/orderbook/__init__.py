"""The orderbook builder: exact L2 books from snapshots and deltas, top of book, queries."""
