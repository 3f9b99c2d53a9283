"""The Celery application, configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radtriage.settings")

# DjangoTask gives every task delay_on_commit(), so work is enqueued only once
# the transaction that asked for it has committed.
app = Celery("radtriage", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
