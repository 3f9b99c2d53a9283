"""Worklist benchmark: API latency and websocket fan-out."""
