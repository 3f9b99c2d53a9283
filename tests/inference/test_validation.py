"""Validation statistics: AUC, operating points and ROC agree with scikit-learn;
calibration, thresholds and subgroups are checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from inference import evaluation, validation

RNG = np.random.default_rng(7)
LABELS = RNG.random(300) < 0.35
# Informative but imperfect scores, with ties (rounded to 2 decimals).
SCORES = np.round(np.clip(0.3 * LABELS + RNG.normal(0.35, 0.2, 300), 0, 1), 2)


def test_auc_matches_scikit_learn_on_the_same_scores() -> None:
    auc = validation.roc_auc(LABELS.tolist(), SCORES.tolist())
    assert auc == pytest.approx(roc_auc_score(LABELS, SCORES), abs=1e-12)


@pytest.mark.parametrize("threshold", [0.2, 0.45, 0.5, 0.73])
def test_operating_point_matches_scikit_learn(threshold: float) -> None:
    point = validation.operating_point(LABELS.tolist(), SCORES.tolist(), threshold)
    predicted = np.greater_equal(SCORES, threshold)
    tn, fp, fn, tp = confusion_matrix(LABELS, predicted).ravel()
    assert (point.true_positives, point.false_positives) == (tp, fp)
    assert (point.true_negatives, point.false_negatives) == (tn, fn)
    assert point.sensitivity == pytest.approx(recall_score(LABELS, predicted))
    assert point.specificity == pytest.approx(recall_score(~LABELS, ~predicted))
    assert point.ppv == pytest.approx(precision_score(LABELS, predicted))
    assert point.npv == pytest.approx(precision_score(~LABELS, ~predicted))


def test_roc_curve_matches_scikit_learn() -> None:
    ours = validation.roc_curve(LABELS.tolist(), SCORES.tolist())
    fpr, tpr, _ = roc_curve(LABELS, SCORES, drop_intermediate=False)
    assert [p.false_positive_rate for p in ours] == pytest.approx(fpr.tolist())
    assert [p.true_positive_rate for p in ours] == pytest.approx(tpr.tolist())


def test_auc_by_hand_with_a_tie() -> None:
    # Pairs (pos, neg): (0.8, 0.3) win, (0.8, 0.5) win, (0.5, 0.3) win,
    # (0.5, 0.5) tie -> (3 + 0.5) / 4.
    assert validation.roc_auc([True, True, False, False], [0.8, 0.5, 0.3, 0.5]) == 0.875
    assert validation.roc_auc([True, True], [0.1, 0.2]) is None


def test_bootstrap_interval_brackets_the_auc_and_is_reproducible() -> None:
    labels, scores = LABELS.tolist(), SCORES.tolist()
    interval = validation.bootstrap_auc_interval(labels, scores, resamples=300, seed=1)
    again = validation.bootstrap_auc_interval(labels, scores, resamples=300, seed=1)
    auc = validation.roc_auc(labels, scores)
    assert interval is not None and auc is not None
    assert interval == again
    assert interval.low < auc < interval.high
    assert 0.05 < interval.high - interval.low < 0.25
    assert interval.resamples == 300


def test_threshold_for_target_sensitivity() -> None:
    labels = [True] * 5 + [False] * 3
    scores = [0.9, 0.8, 0.7, 0.6, 0.2, 0.65, 0.1, 0.05]
    # 80% of 5 positives = 4 -> the 4th highest positive score, 0.6.
    assert validation.threshold_for_sensitivity(labels, scores, 0.8) == 0.6
    assert validation.threshold_for_sensitivity(labels, scores, 0.79) == 0.6
    assert validation.threshold_for_sensitivity(labels, scores, 1.0) == 0.2
    point = validation.operating_point(labels, scores, 0.6)
    assert point.sensitivity == 0.8 and point.specificity == pytest.approx(2 / 3)
    assert validation.threshold_for_sensitivity([False], [0.3], 0.9) is None


def test_threshold_for_sensitivity_reaches_the_target_on_random_scores() -> None:
    labels, scores = LABELS.tolist(), SCORES.tolist()
    for target in (0.5, 0.8, 0.9, 0.95):
        threshold = validation.threshold_for_sensitivity(labels, scores, target)
        assert threshold is not None
        predicted = np.greater_equal(SCORES, threshold)
        assert recall_score(LABELS, predicted) >= target
        # Any higher threshold misses the target.
        higher = SCORES[LABELS][SCORES[LABELS] > threshold]
        if higher.size:
            assert recall_score(LABELS, np.greater_equal(SCORES, higher.min())) < target


def test_calibration_by_hand() -> None:
    labels = [False, True, True, True, False]
    scores = [0.05, 0.15, 0.95, 0.85, 1.0]
    result = validation.calibration(labels, scores, bins=2)
    low, high = result.bins
    assert (low.cases, high.cases) == (2, 3)
    assert low.mean_probability == pytest.approx(0.1)
    assert low.observed_rate == pytest.approx(0.5)
    assert high.mean_probability == pytest.approx(0.9333333)
    assert high.observed_rate == pytest.approx(2 / 3)
    brier = (0.05**2 + 0.85**2 + 0.05**2 + 0.15**2 + 1.0) / 5
    assert result.brier_score == pytest.approx(brier)
    ece = 2 / 5 * 0.4 + 3 / 5 * abs(2 / 3 - 0.9333333)
    assert result.expected_calibration_error == pytest.approx(ece)


def test_subgroups_split_cases_by_each_value() -> None:
    labels = [True, False, True, False]
    scores = [0.9, 0.2, 0.4, 0.6]
    result = validation.subgroups(labels, scores, {"sex": ["F", "F", "M", "M"]}, 0.5)
    female, male = result
    assert (female.value, female.cases, female.auc) == ("F", 2, 1.0)
    assert (male.value, male.auc) == ("M", 0.0)
    assert male.point.sensitivity == 0.0 and male.point.specificity == 0.0


def test_validate_gathers_every_figure_and_a_drift_baseline() -> None:
    result = validation.validate(
        LABELS.tolist(), SCORES.tolist(), threshold=0.5, resamples=50
    )
    assert result.cases == 300 and result.positives == int(LABELS.sum())
    assert result.auc == pytest.approx(roc_auc_score(LABELS, SCORES))
    assert result.current.sensitivity == pytest.approx(
        recall_score(LABELS, np.greater_equal(SCORES, 0.5))
    )
    assert sum(result.histogram) == 300
    assert result.at_target is not None
    assert result.at_target.sensitivity is not None
    assert result.at_target.sensitivity >= 0.9
    assert validation.plot_xy(0, 0) == (40.0, 280.0)
    assert validation.plot_xy(1, 1) == (280.0, 40.0)
    assert not math.isnan(result.calibration.brier_score)


@pytest.mark.parametrize(
    ("labels", "scores"),
    [
        ([], []),  # no cases
        ([True, True], [0.1, 0.2]),  # positives only
        ([False, False, False], [0.9, 0.1, 0.5]),  # negatives only
    ],
)
def test_no_auc_is_defined_without_both_classes(
    labels: list[bool], scores: list[float]
) -> None:
    # None, not NaN: the report and the model card print it as "n/a", and the
    # metrics written as JSON stay valid JSON.
    assert validation.roc_auc(labels, scores) is None


def test_degenerate_scores_give_the_auc_their_ranking_deserves() -> None:
    assert validation.roc_auc([True, False, True, False], [0.5] * 4) == 0.5
    assert validation.roc_auc([True, False], [0.9, 0.1]) == 1.0
    assert validation.roc_auc([True, False], [0.1, 0.9]) == 0.0


def test_bad_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        validation.roc_auc([True, False], [0.5])
    with pytest.raises(ValueError, match="finite"):
        validation.roc_auc([True, False], [float("nan"), 0.5])


def test_model_card_metrics_use_the_same_auc() -> None:
    one_class = [
        evaluation.SeriesResult(True, p, 0, -1, (True,), (p,)) for p in (0.2, 0.7)
    ]
    metrics = evaluation.summarise(one_class, 0.5)
    assert metrics.study_auc is None and metrics.slice_auc is None
    both = [
        evaluation.SeriesResult(label, p, 0, -1, (label,), (p,))
        for label, p in zip(LABELS.tolist(), SCORES.tolist(), strict=True)
    ]
    assert evaluation.summarise(both, 0.5).study_auc == validation.roc_auc(
        LABELS.tolist(), SCORES.tolist()
    )
