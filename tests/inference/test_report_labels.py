"""The report-text labeller: each rule pinned on the phrases radiologists write."""

from __future__ import annotations

import pytest

from inference.report_labels import label_report, terms_pattern
from inference.vocabulary import ReportLabel

ICH = ("intracranial hemorrhage", "hemorrhage", "haemorrhage", "hematoma", "bleed")
FX = ("fracture",)

P, N, U, X = (
    ReportLabel.POSITIVE,
    ReportLabel.NEGATIVE,
    ReportLabel.UNCERTAIN,
    ReportLabel.NOT_MENTIONED,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain mentions
        ("Acute subdural hematoma over the left convexity.", P),
        ("Large intraparenchymal hemorrhage with midline shift.", P),
        ("Small subarachnoid haemorrhages in the sulci.", P),
        # negation before the term
        ("No acute intracranial hemorrhage.", N),
        ("No evidence of hemorrhage, mass effect or midline shift.", N),
        ("Negative for intracranial hemorrhage.", N),
        ("There is no hemorrhage.", N),
        ("Without hemorrhage or hydrocephalus.", N),
        ("No mass, edema or hemorrhage.", N),
        # negation after the term
        ("Hemorrhage is not seen.", N),
        ("Intracranial hemorrhage is excluded.", N),
        ("The previously seen hematoma has resolved.", N),
        # uncertainty, before and after; "cannot be excluded" is not a negation
        ("Possible small subdural hematoma.", U),
        ("Subtle hyperdensity, suspicious for hemorrhage.", U),
        ("A small hemorrhage cannot be excluded.", U),
        ("Cannot rule out hemorrhage; recommend MRI.", U),
        ("Calcification versus hemorrhage in the basal ganglia.", U),
        # pseudo-negations keep the finding positive
        ("No change in the size of the left subdural hematoma.", P),
        ("No significant interval change of the intraparenchymal hemorrhage.", P),
        # a terminator ends the negation's reach
        ("No skull fracture, but there is an epidural hematoma.", P),
        ("No midline shift, however a thin subdural hematoma is present.", P),
        # the finding not named at all
        ("Normal CT of the head. Ventricles are normal in size.", X),
        ("", X),
    ],
)
def test_a_sentence_labels_the_finding(text: str, expected: ReportLabel) -> None:
    assert label_report(text, ICH).label == expected


def test_the_impression_decides_over_the_findings_section() -> None:
    report = (
        "FINDINGS: Hyperdensity along the falx, possibly hemorrhage versus "
        "calcification.\n"
        "IMPRESSION: No acute intracranial hemorrhage. Falcine calcification."
    )
    labelled = label_report(report, ICH)
    assert labelled.label == N
    assert labelled.section == "impression"
    assert labelled.explanation == '"no" intracranial hemorrhage (impression)'


def test_the_body_decides_when_the_impression_is_silent() -> None:
    report = (
        "FINDINGS: Nondisplaced fracture of the distal radius.\n"
        "IMPRESSION: Soft tissue swelling."
    )
    labelled = label_report(report, FX)
    assert (labelled.label, labelled.section) == (P, "body")


def test_one_positive_mention_outweighs_negated_others() -> None:
    report = "No fracture of the ulna. Fracture of the distal radius."
    assert label_report(report, FX).label == P


def test_uncertain_outweighs_negative_but_not_positive() -> None:
    assert (
        label_report("No fracture of the ulna. Possible radial fracture.", FX).label
        == U
    )
    assert (
        label_report("Possible scaphoid fracture. Fracture of the radius.", FX).label
        == P
    )


def test_decimal_points_do_not_split_sentences() -> None:
    report = "A 2.5 cm hematoma is not seen on this study."
    assert label_report(report, ICH).label == N


def test_terms_match_whole_words_and_plurals_only() -> None:
    pattern = terms_pattern(FX)
    assert pattern.search("multiple fractures")
    assert not pattern.search("refractured")  # not a whole word
    with pytest.raises(ValueError):
        terms_pattern([])


def test_the_explanation_names_the_deciding_cue() -> None:
    labelled = label_report("Hemorrhage cannot be excluded.", ICH)
    assert labelled.explanation == '"cannot be excluded" hemorrhage (body)'
    assert (
        label_report("Normal study.", ICH).explanation == "not mentioned in the report"
    )
