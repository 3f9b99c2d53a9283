"""Events the base layer announces to the layers above it.

Higher layers connect receivers in their AppConfig.ready(), so that ``triage``
never imports ``inference`` or ``worklist``. Each is sent after the transaction
that caused it has committed, except where one says otherwise.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A study has had no new instance for its quiet period. ``study_id`` (int).
#: Sent once per stability: late instances reopen the study and it is sent again.
study_stable = Signal()

#: Something a reader sees of a study changed. ``study_id`` (int).
study_changed = Signal()

#: One series of a study is complete (no new instance for its quiet period, or
#: handed over: the study moved on to another series; see triage.stability)
#: while the study as a whole is still receiving: a model that needs only this
#: series may score it now (and amend its result when ``study_stable`` follows).
#: ``study_id`` and ``series_id`` (int). Sent once per stability of the series.
series_stable = Signal()

#: A report from the RIS was stored for a study. ``study_id`` (int) and
#: ``report`` (triage.models.Report). Unlike the others, sent INSIDE the
#: transaction that stored it: what the layers above derive from a report
#: (the end of reading, the AI monitoring's label) commits with it or not at
#: all. A report sent again is not announced again.
report_received = Signal()
