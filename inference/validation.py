"""Validating a model on a site's own labelled cases: the statistics.

Plain Python and NumPy, no framework imports: ROC and its AUC with a bootstrap
interval, operating-point figures at a threshold, calibration, subgroups, the
threshold that reaches a target sensitivity, and plot geometry for the report.
A case is positive for the model when its probability is >= the threshold, as
the scorer decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_BOOTSTRAP = 2000
DEFAULT_TARGET_SENSITIVITY = 0.9
CALIBRATION_BINS = 10


def _arrays(
    labels: Sequence[bool], scores: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("labels and scores must be equal-length sequences")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite numbers")
    return y, s


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U).

    The chance that a random positive case scores above a random negative one,
    ties counting half.

    Returns:
        AUC in [0, 1], or None when the cases hold only one class.
    """
    y, s = _arrays(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranked = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # Average ranks over runs of tied scores.
    _, starts, counts = np.unique(ranked, return_index=True, return_counts=True)
    average = starts + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


@dataclass(frozen=True, slots=True)
class RocPoint:
    """One operating point: rates when scores >= ``threshold`` are positive."""

    threshold: float
    false_positive_rate: float
    true_positive_rate: float


def roc_curve(labels: Sequence[bool], scores: Sequence[float]) -> tuple[RocPoint, ...]:
    """The ROC curve from (0, 0) to (1, 1), one point per distinct score.

    Each point is the operating point of "positive when score >= threshold".
    """
    y, s = _arrays(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    points = [RocPoint(math.inf, 0.0, 0.0)]
    if n_pos == 0 or n_neg == 0:
        return (*points, RocPoint(-math.inf, 1.0, 1.0))
    for threshold in np.unique(s)[::-1]:
        called = s >= threshold
        points.append(
            RocPoint(
                float(threshold),
                float((called & ~y).sum() / n_neg),
                float((called & y).sum() / n_pos),
            )
        )
    return tuple(points)


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval from ``resamples`` usable bootstrap samples."""

    low: float
    high: float
    level: float
    resamples: int  # bootstrap samples that held both classes


def bootstrap_auc_interval(
    labels: Sequence[bool],
    scores: Sequence[float],
    *,
    resamples: int = DEFAULT_BOOTSTRAP,
    level: float = 0.95,
    seed: int = 0,
) -> Interval | None:
    """Percentile bootstrap interval for the AUC.

    Cases are drawn with replacement ``resamples`` times (a fixed ``seed`` makes
    the report reproducible); samples holding one class only are skipped.

    Returns:
        The central ``level`` interval, or None without both classes.
    """
    y, s = _arrays(labels, scores)
    if roc_auc(labels, scores) is None:
        return None
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(resamples):
        index = rng.integers(0, len(s), len(s))
        auc = roc_auc(y[index].tolist(), s[index].tolist())
        if auc is not None:
            aucs.append(auc)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(aucs, [tail, 1.0 - tail])
    return Interval(float(low), float(high), level, len(aucs))


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Counts and rates at one threshold; a rate is None when undefined."""

    threshold: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int

    @property
    def sensitivity(self) -> float | None:
        """TP / (TP + FN)."""
        return _ratio(self.true_positives, self.true_positives + self.false_negatives)

    @property
    def specificity(self) -> float | None:
        """TN / (TN + FP)."""
        return _ratio(self.true_negatives, self.true_negatives + self.false_positives)

    @property
    def ppv(self) -> float | None:
        """TP / (TP + FP), at this set's prevalence."""
        return _ratio(self.true_positives, self.true_positives + self.false_positives)

    @property
    def npv(self) -> float | None:
        """TN / (TN + FN), at this set's prevalence."""
        return _ratio(self.true_negatives, self.true_negatives + self.false_negatives)


def operating_point(
    labels: Sequence[bool], scores: Sequence[float], threshold: float
) -> OperatingPoint:
    """Confusion counts when cases scoring >= ``threshold`` are called positive."""
    y, s = _arrays(labels, scores)
    called = s >= threshold
    return OperatingPoint(
        threshold=threshold,
        true_positives=int((called & y).sum()),
        false_positives=int((called & ~y).sum()),
        true_negatives=int((~called & ~y).sum()),
        false_negatives=int((~called & y).sum()),
    )


def threshold_for_sensitivity(
    labels: Sequence[bool], scores: Sequence[float], target: float
) -> float | None:
    """The highest threshold whose sensitivity is at least ``target`` (0 to 1).

    The highest such threshold keeps the most specificity: it is the k-th highest
    positive score, with k = ceil(target x positives).

    Returns:
        The threshold, or None without positive cases.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must lie in (0, 1], got {target}")
    y, s = _arrays(labels, scores)
    positives = np.sort(s[y])[::-1]
    if positives.size == 0:
        return None
    k = math.ceil(target * positives.size - 1e-9)
    return float(positives[k - 1])


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """Cases whose probability fell in [low, high) and how often they were positive."""

    low: float
    high: float
    cases: int
    mean_probability: float | None
    observed_rate: float | None


@dataclass(frozen=True, slots=True)
class Calibration:
    """Calibration bins and summary errors."""

    bins: tuple[CalibrationBin, ...]
    brier_score: float  # mean squared error of the probabilities, 0 is perfect
    expected_calibration_error: float  # case-weighted |observed - predicted|


def calibration(
    labels: Sequence[bool], scores: Sequence[float], bins: int = CALIBRATION_BINS
) -> Calibration:
    """Observed positive rate against mean predicted probability per bin.

    Bins are equal-width over [0, 1]: [lo, hi), the last one closed.
    """
    y, s = _arrays(labels, scores)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1)
    rows = []
    ece = 0.0
    for i in range(bins):
        members = which == i
        n = int(members.sum())
        mean_p = float(s[members].mean()) if n else None
        observed = float(y[members].mean()) if n else None
        if mean_p is not None and observed is not None:
            ece += n / len(s) * abs(observed - mean_p)
        rows.append(
            CalibrationBin(float(edges[i]), float(edges[i + 1]), n, mean_p, observed)
        )
    brier = float(np.mean((s - y.astype(np.float64)) ** 2)) if len(s) else math.nan
    return Calibration(tuple(rows), brier, ece)


def score_histogram(scores: Sequence[float], bins: int = 10) -> tuple[int, ...]:
    """Counts of probabilities per equal-width bin over [0, 1] (drift baseline)."""
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    counts, _ = np.histogram(s, bins=bins, range=(0.0, 1.0))
    return tuple(int(c) for c in counts)


@dataclass(frozen=True, slots=True)
class SubgroupResult:
    """Figures for the cases holding one value of one grouping."""

    name: str
    value: str
    cases: int
    positives: int
    auc: float | None
    point: OperatingPoint


def subgroups(
    labels: Sequence[bool],
    scores: Sequence[float],
    groups: Mapping[str, Sequence[str]],
    threshold: float,
) -> tuple[SubgroupResult, ...]:
    """AUC and operating point per value of each grouping (e.g. sex, scanner)."""
    y, s = _arrays(labels, scores)
    results = []
    for name, values in groups.items():
        column = np.asarray(values, dtype=object)
        for value in sorted(set(values)):
            members = column == value
            yl, sl = y[members].tolist(), s[members].tolist()
            results.append(
                SubgroupResult(
                    name=name,
                    value=value,
                    cases=len(yl),
                    positives=int(sum(yl)),
                    auc=roc_auc(yl, sl),
                    point=operating_point(yl, sl, threshold),
                )
            )
    return tuple(results)


@dataclass(frozen=True, slots=True)
class Validation:
    """Everything the validation report shows."""

    cases: int
    positives: int
    auc: float | None
    auc_interval: Interval | None
    roc: tuple[RocPoint, ...]
    current: OperatingPoint
    target_sensitivity: float
    target_threshold: float | None
    at_target: OperatingPoint | None
    calibration: Calibration
    subgroups: tuple[SubgroupResult, ...]
    histogram: tuple[int, ...]


def validate(
    labels: Sequence[bool],
    scores: Sequence[float],
    *,
    threshold: float,
    target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY,
    groups: Mapping[str, Sequence[str]] | None = None,
    resamples: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> Validation:
    """All validation figures for one finding of one model.

    Args:
        labels: the reference standard per case (True: finding present).
        scores: the model's probability per case, 0 to 1.
        threshold: the threshold in force (the site's override, else the
            manifest's).
        target_sensitivity: the sensitivity the suggested threshold must reach.
        groups: subgroup name -> one value per case.
        resamples: bootstrap samples for the AUC interval.
        seed: bootstrap seed, for a reproducible report.
    """
    target = threshold_for_sensitivity(labels, scores, target_sensitivity)
    return Validation(
        cases=len(labels),
        positives=int(sum(bool(v) for v in labels)),
        auc=roc_auc(labels, scores),
        auc_interval=bootstrap_auc_interval(
            labels, scores, resamples=resamples, seed=seed
        ),
        roc=roc_curve(labels, scores),
        current=operating_point(labels, scores, threshold),
        target_sensitivity=target_sensitivity,
        target_threshold=target,
        at_target=None if target is None else operating_point(labels, scores, target),
        calibration=calibration(labels, scores),
        subgroups=subgroups(labels, scores, groups or {}, threshold),
        histogram=score_histogram(scores),
    )


# Plot geometry: a unit square drawn in a SIZE x SIZE viewBox with a margin.
PLOT_SIZE = 320.0
PLOT_MARGIN = 40.0


def plot_xy(x: float, y: float) -> tuple[float, float]:
    """A point of the unit square in SVG coordinates (y grows downwards)."""
    inner = PLOT_SIZE - 2 * PLOT_MARGIN
    return (
        round(PLOT_MARGIN + x * inner, 1),
        round(PLOT_SIZE - PLOT_MARGIN - y * inner, 1),
    )


def roc_polyline(roc: Sequence[RocPoint]) -> str:
    """SVG ``points`` of the ROC curve as a step line."""
    return " ".join(
        "{},{}".format(*plot_xy(p.false_positive_rate, p.true_positive_rate))
        for p in roc
    )


def calibration_points(result: Calibration) -> tuple[tuple[float, float, str], ...]:
    """(x, y, label) of each non-empty bin: predicted against observed."""
    return tuple(
        (
            *plot_xy(b.mean_probability, b.observed_rate),
            f"{b.low:.1f}-{b.high:.1f}: {b.cases} cases, predicted "
            f"{b.mean_probability:.2f}, observed {b.observed_rate:.2f}",
        )
        for b in result.bins
        if b.mean_probability is not None and b.observed_rate is not None
    )
