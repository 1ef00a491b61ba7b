"""The Kalshi WebSocket connector: subscribe, check sequence, recover, journal, publish."""
