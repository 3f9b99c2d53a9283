"""Benchmark of the turnaround report on a year of synthetic studies."""
