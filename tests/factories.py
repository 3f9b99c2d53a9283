"""factory_boy factories: each test's data stays visible in the test."""

from __future__ import annotations

from django.utils import timezone
from factory.declarations import LazyFunction, Sequence, SubFactory
from factory.django import DjangoModelFactory
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from triage.models import Instance, Patient, Series, Study


class PatientFactory(DjangoModelFactory[Patient]):
    class Meta:
        model = Patient

    patient_id = Sequence(lambda n: f"SYN{n:06d}")
    patient_name = Sequence(lambda n: f"SYNTHETIC^PATIENT{n:04d}")


class StudyFactory(DjangoModelFactory[Study]):
    class Meta:
        model = Study

    study_instance_uid = Sequence(lambda n: f"1.2.826.0.1.3680043.10.1.{n + 1}")
    patient = SubFactory(PatientFactory)
    accession_number = Sequence(lambda n: f"ACC{n:06d}")
    modalities = "CT"
    body_part_examined = "HEAD"
    study_description = "CT HEAD WO CONTRAST"
    first_instance_received_at = LazyFunction(timezone.now)
    last_instance_received_at = LazyFunction(timezone.now)


class SeriesFactory(DjangoModelFactory[Series]):
    class Meta:
        model = Series

    series_instance_uid = Sequence(lambda n: f"1.2.826.0.1.3680043.10.2.{n + 1}")
    study = SubFactory(StudyFactory)
    modality = "CT"
    series_number = 1


class InstanceFactory(DjangoModelFactory[Instance]):
    class Meta:
        model = Instance

    sop_instance_uid = Sequence(lambda n: f"1.2.826.0.1.3680043.10.3.{n + 1}")
    series = SubFactory(SeriesFactory)
    sop_class_uid = str(CTImageStorage)
    transfer_syntax_uid = str(ExplicitVRLittleEndian)
    storage_path = Sequence(lambda n: f"x/{n}.dcm")
    size_bytes = 1024
    sha256 = "0" * 64
    received_at = LazyFunction(timezone.now)
