"""Fuzzing the ingest core, briefly (``./run fuzz`` runs it for longer)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.fuzz.ingest import _base, _dataset, _save, check_ingest, ingest_inputs

pytestmark = [
    pytest.mark.django_db,
    # pydicom warns of every odd value it reads: that is the point here.
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


@settings(
    max_examples=120,
    deadline=timedelta(seconds=10),  # a hang is a failure too
    derandomize=True,  # the same cases on every CI run; ./run fuzz explores
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=ingest_inputs())
def test_any_stream_is_stored_whole_or_refused_with_nothing_kept(data: bytes) -> None:
    check_ingest(data)


# Run apart, under an address-space cap: unbounded, the old generator took
# ``./run fuzz`` to 24 GB before the kernel killed it.
_DEEP_HOSTILE_VALUE = """
import os, resource, sys, tracemalloc, warnings
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
warnings.simplefilter("ignore")
import django
django.setup()
from pydicom.uid import ExplicitVRLittleEndian
from tests.fuzz.ingest import _dataset, _nested
dataset = _dataset(ExplicitVRLittleEndian)
# pydicom fails to encode an empty multi-value in ISO 2022 (IndexError).
dataset.SpecificCharacterSet = "ISO 2022 IR 87"
tracemalloc.start()
stream = _nested(dataset, "\\\\\\\\", 40)
print(stream is None, tracemalloc.get_traced_memory()[1])
"""


def test_a_value_pydicom_cannot_write_deep_in_sequences_costs_little() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _DEEP_HOSTILE_VALUE],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "radtriage.settings"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    refused, peak = done.stdout.split()
    assert refused == "True"  # the generator falls back to a plain stream
    assert int(peak) < 32 << 20


def test_memory_exhausted_while_generating_is_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(Dataset, "save_as", exhausted)
    with pytest.raises(MemoryError):
        _save(_dataset(ExplicitVRLittleEndian))


def test_an_empty_last_element_of_an_unknown_vr_is_no_crash() -> None:
    # Found by ``./run fuzz``: pydicom's NotImplementedError escaped the ingest.
    empty = struct.pack("<HH2sH", 0x7FE1, 0x0000, b"ZZ", 0)
    check_ingest(_base(ExplicitVRLittleEndian) + empty)


_CAPPED = """
import resource
from tests.fuzz.__main__ import _cap_memory
_cap_memory(2 << 30)
print(resource.getrlimit(resource.RLIMIT_AS)[0])
try:
    bytearray(3 << 30)
except MemoryError:
    print("MemoryError")
"""


def test_the_fuzz_run_caps_its_memory_so_exhaustion_is_a_reported_failure() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CAPPED],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == [str(2 << 30), "MemoryError"]
