"""Events the scoring layer announces to the layer above it (worklist).

Sent after the transaction that caused them has committed; receivers connect in
their AppConfig.ready(), so ``inference`` never imports ``worklist``.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A study's AI screening finished (scored, not applicable or failed) and its
#: findings or AI status may have changed. ``study_id`` (int); ``changed`` (bool):
#: False when a re-delivered or repeated scoring found nothing new (no re-alert).
#: Receivers read live findings with ``Finding.objects.live()``: shadow models'
#: findings and superseded results never reach priority or alerts.
#: Sent by ``inference.followups`` inside the transaction that marks the
#: follow-up done, at least once per result: receivers are idempotent, work in
#: their own atomic block and raise on failure (the follow-up is then retried).
study_scored = Signal()
