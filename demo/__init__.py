"""Demo tooling: synthetic studies, demo-model training, demo users and feed.

Production code never imports this package (an import-linter contract checks it).
"""
