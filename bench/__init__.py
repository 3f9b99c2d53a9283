"""Benchmarks, each runnable by one command."""
