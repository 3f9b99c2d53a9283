"""Fuzzing of RadTriage's DICOM edges: the ingest core and the listener's PDUs.

The strategies and checks live here; tests/triage/test_ingest_fuzz.py and
tests/triage/test_listener_fuzz.py run them briefly in CI, and
``python -m tests.fuzz`` (``./run fuzz``) runs them for longer.
"""
