"""Ingest throughput benchmark: RadTriage against Orthanc and storescp."""
