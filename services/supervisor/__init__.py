"""The supervisor: starts the workers in order, watches their heartbeats, restarts them by policy."""
