"""State changes of the scoring layer: registry, queueing, scoring, results.

The heavy work (decoding, inference, heatmaps) runs outside any transaction;
each write is a short ``@transaction.atomic`` service that locks what it changes.

- :mod:`~inference.services.model_registry`: the registered models, their mode
  and thresholds;
- :mod:`~inference.services.applicability`: which series a model would score;
- :mod:`~inference.services.queueing`: putting studies on the scoring queues;
- :mod:`~inference.services.jobs`: what a run works on and produces;
- :mod:`~inference.services.scoring`: one scoring run, claim to outcomes;
- :mod:`~inference.services.results`: storing results and the AI status;
- ``_scoring_sql``: the plain SQL of the hot path.
"""

from inference.services.jobs import (
    FindingOutcome,
    InstanceRef,
    ModelOutcome,
    ScoringJob,
    TransientScoringError,
    instance_set_digest,
)
from inference.services.model_registry import (
    RegistryEntry,
    discover_models,
    registry,
    set_model_mode,
    set_threshold_override,
    sync_registry,
)
from inference.services.queueing import (
    ROUTINE_QUEUE,
    URGENT_QUEUE,
    enqueue_early_scoring,
    enqueue_scoring,
    scoring_queue,
    sweep_stuck_scoring,
)
from inference.services.results import (
    HEATMAP_DIR,
    apply_results,
    record_scoring_failure,
)
from inference.services.scoring import score_study

__all__ = [
    "HEATMAP_DIR",
    "ROUTINE_QUEUE",
    "URGENT_QUEUE",
    "FindingOutcome",
    "InstanceRef",
    "ModelOutcome",
    "RegistryEntry",
    "ScoringJob",
    "TransientScoringError",
    "apply_results",
    "discover_models",
    "enqueue_early_scoring",
    "enqueue_scoring",
    "instance_set_digest",
    "record_scoring_failure",
    "registry",
    "score_study",
    "scoring_queue",
    "set_model_mode",
    "set_threshold_override",
    "sweep_stuck_scoring",
    "sync_registry",
]
