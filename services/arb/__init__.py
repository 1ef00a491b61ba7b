"""The sports arbitrage detector: Kalshi game markets against sportsbook odds, and against themselves."""
