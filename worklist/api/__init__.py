"""The worklist's REST API."""
