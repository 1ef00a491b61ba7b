"""The REST poller: market discovery, metadata, periodic snapshots, WebSocket fallback."""
