"""factory_boy factories: each test's data stays visible in the test."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from factory.declarations import LazyAttribute, LazyFunction, Sequence, SubFactory
from factory.django import DjangoModelFactory
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from inference.models import Finding, RegisteredModel, ScoreResult, StudyScoring
from triage.models import Instance, Patient, Series, Study
from worklist.models import AIFeedback, Alert, WorklistEntry

#: Keyword arguments of StudyFactory that belong to the study's worklist entry.
ENTRY_FIELDS = frozenset(
    name
    for f in WorklistEntry._meta.concrete_fields
    if f.name != "study"
    for name in {f.name, f.attname}
)
#: Keyword arguments of StudyFactory that belong to the study's scoring row.
SCORING_FIELDS = frozenset(
    f.name for f in StudyScoring._meta.concrete_fields if f.name != "study"
)


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

    @classmethod
    def _create(cls, model_class: type[Study], *args: Any, **kwargs: Any) -> Study:
        """The study, with its worklist entry and scoring row (made by those
        layers as the study is) set as given."""
        entry = {k: kwargs.pop(k) for k in list(kwargs) if k in ENTRY_FIELDS}
        scoring = {k: kwargs.pop(k) for k in list(kwargs) if k in SCORING_FIELDS}
        study: Study = super()._create(model_class, *args, **kwargs)
        if entry:
            WorklistEntry.objects.filter(study_id=study.pk).update(**entry)
        if scoring:
            StudyScoring.objects.filter(study_id=study.pk).update(**scoring)
        return study


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


def entry_of(study: Study | int) -> WorklistEntry:
    """The study's worklist entry, as the database has it now."""
    study_id = study if isinstance(study, int) else study.pk
    return WorklistEntry.objects.select_related("claimed_by").get(study_id=study_id)


def scoring_of(study: Study | int) -> StudyScoring:
    """The study's scoring row, as the database has it now."""
    study_id = study if isinstance(study, int) else study.pk
    return StudyScoring.objects.get(study_id=study_id)


class RegisteredModelFactory(DjangoModelFactory[RegisteredModel]):
    """A model in the registry; one per model_id (get_or_create)."""

    class Meta:
        model = RegisteredModel
        django_get_or_create = ("model_id",)

    model_id = "ich-demo"
    version = "1.0"
    name = "ICH demo"


class ScoreResultFactory(DjangoModelFactory[ScoreResult]):
    """A current, scored, active result of a study."""

    class Meta:
        model = ScoreResult

    study = SubFactory(StudyFactory)
    model = SubFactory(RegisteredModelFactory)
    model_version = LazyAttribute(lambda r: r.model.version)
    model_sha256 = "0" * 64
    instance_set = Sequence(lambda n: f"set-{n}")
    status = "scored"
    mode = "active"
    scored_at = LazyFunction(timezone.now)


class FindingFactory(DjangoModelFactory[Finding]):
    """A finding of a result, positive when its probability reaches the
    threshold; the study is the result's."""

    class Meta:
        model = Finding

    result = SubFactory(ScoreResultFactory)
    study = LazyAttribute(lambda f: f.result.study)
    code = "ich"
    display = LazyAttribute(lambda f: f.code.upper())
    severity = "critical"
    probability = 0.94
    threshold = 0.5
    positive = LazyAttribute(lambda f: f.probability >= f.threshold)
    shadow = LazyAttribute(lambda f: f.result.mode == "shadow")
    created_at = LazyFunction(timezone.now)


class AlertFactory(DjangoModelFactory[Alert]):
    """An open critical-finding alert on a study."""

    class Meta:
        model = Alert

    study = SubFactory(StudyFactory)
    finding_code = "ich"
    finding_display = "ICH"
    severity = "critical"
    probability = 0.94
    threshold = 0.5
    raised_at = LazyFunction(timezone.now)
    updated_at = LazyFunction(timezone.now)


class AIFeedbackFactory(DjangoModelFactory[AIFeedback]):
    """A reader's verdict on a study's finding."""

    class Meta:
        model = AIFeedback

    study = SubFactory(StudyFactory)
    finding_code = "ich"
    verdict = "agree"
    created_at = LazyFunction(timezone.now)
    updated_at = LazyFunction(timezone.now)
