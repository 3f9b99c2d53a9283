"""Django settings, all read from the environment.

With nothing set, RadTriage runs in its embedded mode: SQLite under ``var/``, an
in-memory Celery broker and channel layer, and one ``serve`` process running web,
DICOM listener, worker and scheduler together. ``DATABASE_URL`` and ``REDIS_URL``
select PostgreSQL and Redis for production, where those run as separate processes.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url

# A runtime requirement (requirements*.in): it is made to be imported at run time,
# giving Django's generic classes the __class_getitem__ the type hints need.
import django_stubs_ext
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from radtriage.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
)
from triage.stability import (
    DEFAULT_HANDOVER_SECONDS,
    DEFAULT_STABILITY_SECONDS,
    parse_stability_seconds,
)
from triage.vocabulary import OrderPriority, PatientClass
from worklist.alerts.rules import parse_escalation_minutes
from worklist.priority import parse_points
from worklist.tat import DEFAULT_SLA_MINUTES, parse_sla_minutes

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("RADTRIAGE_VAR_DIR", str(BASE_DIR / "var")))

DATABASE_URL = env_secret("DATABASE_URL")
REDIS_URL = env_secret("REDIS_URL")
# Without Redis the broker and channel layer live in memory, which is only
# correct when every component shares the one `serve` process.
EMBEDDED = not REDIS_URL

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_secret("SECRET_KEY")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long")
        return key
    if DATABASE_URL or REDIS_URL:
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) must be set when DATABASE_URL or "
            "REDIS_URL select production mode"
        )
    # Embedded mode: a random key kept beside the database, private to this install.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_filters",
    "django_htmx",
    "channels",
    "axes",
    "csp",
    "triage",
    "inference",
    "worklist",
    # The demo's commands (seed_demo, demo_serve); production code never imports it.
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After whitenoise, which answers static files itself: everything else may
    # carry PHI and must never sit in a browser's or a proxy's cache.
    "radtriage.middleware.NoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless its view says otherwise.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: answers 429 to a locked-out login.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # Refuses logins while locked out; then Django's own checks the password.
    "radtriage.auth.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes). Locked by username and address together: a
# ward behind one NAT address is not locked out by one user's typos, and
# nobody elsewhere can lock a radiologist out by guessing at their name. Each
# failure and each lockout is also written to the audit trail (triage.accounts).
AXES_FAILURE_LIMIT = env_int("RADTRIAGE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(
    minutes=env_float("RADTRIAGE_LOGIN_LOCKOUT_MINUTES", 15.0, minimum=0.1)
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client's address is the socket's: a forwarded-for header is the client's
# to write, and would let it dodge the lockout.
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
AXES_SENSITIVE_PARAMETERS = ["password"]

# Content-Security-Policy (django-csp): scripts and styles from our own static
# files only; no inline script, no eval, no framing, no plug-ins.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

ROOT_URLCONF = "radtriage.urls"
ASGI_APPLICATION = "radtriage.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    if DATABASE_URL:
        config: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL))
        if config["ENGINE"] != "django.db.backends.postgresql":
            raise ImproperlyConfigured("DATABASE_URL must point to PostgreSQL")
        # psycopg 3's pool; Django requires CONN_MAX_AGE = 0 with it.
        config["CONN_MAX_AGE"] = 0
        # After a database restart, pooled connections are dead: the pool tests
        # each one as it hands it out rather than fail a request on it.
        config["CONN_HEALTH_CHECKS"] = True
        config["OPTIONS"] = {
            # Django turns prepared statements off (for connection poolers). Its
            # ORM binds parameters on the client, so it never prepares anyway;
            # this lets ingest's hot statement, bound on the server, be
            # prepared (triage.ingest_sql). Behind a pooler in transaction mode
            # older than PgBouncer 1.21, set DATABASE_PREPARED_STATEMENTS=false.
            "prepare_threshold": (
                5 if env_bool("DATABASE_PREPARED_STATEMENTS", True) else None
            ),
            "pool": {
                "min_size": env_int("DATABASE_POOL_MIN", 2, minimum=0),
                "max_size": env_int("DATABASE_POOL_MAX", 10, minimum=1),
                # Seconds to wait for a connection before failing the request
                # (a C-STORE then answers "out of resources" and is re-sent).
                "timeout": env_float("DATABASE_POOL_TIMEOUT", 10.0, minimum=0.1),
            },
        }
        return config
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "radtriage.sqlite3",
        "OPTIONS": {
            # IMMEDIATE stops read-then-write transactions failing at once with
            # "database is locked" under concurrent writers; FULL keeps an
            # acknowledged instance's row on disk through a power cut.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        },
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {"NAME": f"{_VALIDATORS}.MinimumLengthValidator"},
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("RADTRIAGE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
# Served from the finders, so no collectstatic step is needed to start.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("RADTRIAGE_SESSION_SECONDS", 12 * 3600, minimum=300)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("RADTRIAGE_HTTPS", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31536000

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The API speaks JSON only (the pages post their forms to Django views).
    "DEFAULT_PARSER_CLASSES": ["radtriage.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RadTriage API",
    "DESCRIPTION": "Radiology worklist triage: studies, AI findings, alerts, reports.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "radtriage.openapi.add_error_responses",
    ],
}

if EMBEDDED:
    CHANNEL_LAYERS: dict[str, Any] = {
        "default": {
            "BACKEND": "radtriage.channel_layers.ThreadSafeInMemoryChannelLayer"
        }
    }
else:
    # channels_redis waits for messages with a 5 s blocking pop; redis-py 8's
    # default socket_timeout of 5 s fired inside it and killed every idle
    # websocket. The read timeout must outlast the pop, and still notice a
    # dead Redis: 15 s, with TCP keepalive and a health check (a PING before a
    # command on a connection idle this long) for half-open connections.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": env_float(
                            "RADTRIAGE_CHANNELS_SOCKET_TIMEOUT", 15.0, minimum=6.0
                        ),
                        "socket_connect_timeout": 5.0,
                        "socket_keepalive": True,
                        "health_check_interval": 30,
                        "retry_on_timeout": True,
                    }
                ]
            },
        }
    }

# Celery: the broker is Redis in production and in-memory in the embedded mode.
# The memory transport's URL names a host: without one kombu warns "No hostname
# was supplied" at every start of the embedded mode.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
    # kombu's memory transport sleeps this long whenever it finds nothing; the
    # default of 1 s makes every task wait seconds.
    {"polling_interval": 0.02} if EMBEDDED else {"visibility_timeout": 3600}
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "routine"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = False
RADTRIAGE_STABILITY_SWEEP_SECONDS = env_float(
    "RADTRIAGE_STABILITY_SWEEP_SECONDS", 2.0, minimum=0.1
)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "refresh-worklist-priorities": {
        "task": "worklist.tasks.refresh_priorities",
        "schedule": env_float("RADTRIAGE_PRIORITY_REFRESH_SECONDS", 60.0, minimum=1.0),
        "options": {"queue": "routine", "expires": 120.0},
    },
    "release-inactive-claims": {
        "task": "worklist.tasks.release_inactive_claims",
        "schedule": 60.0,
        "options": {"queue": "routine", "expires": 120.0},
    },
    "record-worker-heartbeat": {
        "task": "triage.tasks.record_worker_heartbeat",
        "schedule": 30.0,
    },
    "sweep-stuck-scoring": {
        "task": "inference.tasks.sweep_stuck_scoring",
        "schedule": env_float("RADTRIAGE_SCORING_SWEEP_SECONDS", 60.0, minimum=1.0),
        "options": {"queue": "urgent", "expires": 120.0},
    },
    # Studies whose scoring worker died (their lease expired): queued again.
    "reclaim-expired-scoring": {
        "task": "inference.tasks.reclaim_expired_scoring",
        "schedule": env_float("RADTRIAGE_SCORING_RECLAIM_SECONDS", 5.0, minimum=0.5),
        "options": {"queue": "urgent", "expires": 30.0},
    },
    # What must follow a scoring result (priority, alerts) and lost its runner.
    "sweep-scoring-followups": {
        "task": "inference.tasks.sweep_scoring_followups",
        "schedule": env_float("RADTRIAGE_FOLLOWUP_SWEEP_SECONDS", 5.0, minimum=0.5),
        "options": {"queue": "urgent", "expires": 30.0},
    },
    "escalate-overdue-alerts": {
        "task": "worklist.alerts.tasks.escalate_overdue_alerts",
        "schedule": env_float("RADTRIAGE_ALERT_SWEEP_SECONDS", 15.0, minimum=0.5),
        "options": {"queue": "urgent", "expires": 60.0},
    },
    "audit-storage": {
        "task": "triage.tasks.audit_storage",
        "schedule": 3600.0
        * env_float("RADTRIAGE_STORAGE_AUDIT_HOURS", 24.0, minimum=0.1),
        "options": {"queue": "routine", "expires": 3600.0},
    },
    "sweep-stability": {
        "task": "triage.tasks.sweep_stability",
        "schedule": RADTRIAGE_STABILITY_SWEEP_SECONDS,
        # Urgent: scoring waits on it. A sweep nobody ran in time is dropped,
        # not queued up: the next tick does the same work.
        "options": {
            "queue": "urgent",
            "expires": 10 * RADTRIAGE_STABILITY_SWEEP_SECONDS,
        },
    },
}

# RadTriage's own knobs.
RADTRIAGE_STORAGE_DIR = Path(env_str("RADTRIAGE_STORAGE_DIR", str(VAR_DIR / "dicom")))
RADTRIAGE_MAX_INSTANCE_BYTES = (
    env_int("RADTRIAGE_MAX_INSTANCE_MB", 1024, minimum=1) * 1024 * 1024
)
RADTRIAGE_AE_TITLE = env_str("RADTRIAGE_AE_TITLE", "RADTRIAGE")
RADTRIAGE_DICOM_HOST = env_str("RADTRIAGE_DICOM_HOST", "127.0.0.1")
RADTRIAGE_DICOM_PORT = env_int("RADTRIAGE_DICOM_PORT", 11112, minimum=1)
RADTRIAGE_DICOM_MAX_ASSOCIATIONS = env_int(
    "RADTRIAGE_DICOM_MAX_ASSOCIATIONS", 16, minimum=1
)
# A larger PDU than pynetdicom's 16 KiB default moves big slices with fewer reads.
RADTRIAGE_DICOM_MAX_PDU = env_int("RADTRIAGE_DICOM_MAX_PDU", 1 << 20, minimum=0)
RADTRIAGE_DICOM_CALLING_AE_ALLOWLIST = env_list(
    "RADTRIAGE_DICOM_CALLING_AE_ALLOWLIST", []
)
# HL7 v2 over MLLP (triage.hl7): orders, reports and patient updates.
RADTRIAGE_HL7_HOST = env_str("RADTRIAGE_HL7_HOST", "127.0.0.1")
RADTRIAGE_HL7_PORT = env_int("RADTRIAGE_HL7_PORT", 2575, minimum=1)
# A frame longer than this is refused (AR) and its connection closed.
RADTRIAGE_HL7_MAX_MESSAGE_BYTES = (
    env_int("RADTRIAGE_HL7_MAX_MESSAGE_KB", 1024, minimum=1) * 1024
)
# Threads storing and applying messages, each with a database connection.
# SQLite takes one writer at a time, and its waiting writers poll with sleeps
# (up to 25 ms each): one thread queues them without the sleeps instead.
RADTRIAGE_HL7_DATABASE_THREADS = env_int(
    "RADTRIAGE_HL7_DATABASE_THREADS", 4 if DATABASE_URL else 1, minimum=1
)
# Whether the embedded `serve` starts the HL7 listener too.
RADTRIAGE_HL7_IN_SERVE = env_bool("RADTRIAGE_HL7_IN_SERVE", True)
# Modules whose import registers HL7 handlers (triage.hl7.dispatch.register).
RADTRIAGE_HL7_HANDLER_MODULES = env_list("RADTRIAGE_HL7_HANDLER_MODULES", [])
# Seconds without a new instance after which a study (or series) is stable,
# per DICOM modality; "*" for the others.
# A series whose study has moved on to another series is complete after this
# much quiet, before its own quiet period (modalities send series in turn).
RADTRIAGE_SERIES_HANDOVER_SECONDS = env_float(
    "RADTRIAGE_SERIES_HANDOVER_SECONDS", DEFAULT_HANDOVER_SECONDS, minimum=0.0
)
try:
    RADTRIAGE_STABILITY = parse_stability_seconds(
        env_str("RADTRIAGE_STABILITY_SECONDS", DEFAULT_STABILITY_SECONDS),
        handover_seconds=RADTRIAGE_SERIES_HANDOVER_SECONDS,
    )
except ValueError as exc:
    raise ImproperlyConfigured(
        f"RADTRIAGE_STABILITY_SECONDS or RADTRIAGE_SERIES_HANDOVER_SECONDS: {exc}"
    ) from exc
# STOW-RS on PostgreSQL stores this many instances of a request at once.
RADTRIAGE_STOW_CONCURRENCY = env_int("RADTRIAGE_STOW_CONCURRENCY", 4, minimum=1)
# Receiving request bodies (radtriage.body_limits): the longest pause between
# two chunks anywhere, and outside DICOMweb the longest time for a whole body
# and its largest size.
RADTRIAGE_BODY_IDLE_SECONDS = env_float(
    "RADTRIAGE_BODY_IDLE_SECONDS", 30.0, minimum=0.1
)
RADTRIAGE_BODY_SECONDS = env_float("RADTRIAGE_BODY_SECONDS", 120.0, minimum=0.1)
RADTRIAGE_MAX_REQUEST_BYTES = (
    env_int("RADTRIAGE_MAX_REQUEST_MB", 10, minimum=1) * 1024 * 1024
)
RADTRIAGE_WEB_HOST = env_str("RADTRIAGE_WEB_HOST", "127.0.0.1")
RADTRIAGE_WEB_PORT = env_int("RADTRIAGE_WEB_PORT", 8000, minimum=1)
RADTRIAGE_EMBEDDED_WORKERS = env_int("RADTRIAGE_EMBEDDED_WORKERS", 2, minimum=1)
RADTRIAGE_WORKER_HEARTBEAT_MAX_AGE = env_float(
    "RADTRIAGE_WORKER_HEARTBEAT_MAX_AGE", 120.0, minimum=1.0
)
RADTRIAGE_VIEWER_URL_TEMPLATE = env_str(
    "RADTRIAGE_VIEWER_URL_TEMPLATE", "/viewer?StudyInstanceUIDs={study_instance_uid}"
)
# Where reading ends: "ris" (the RIS's preliminary and final reports, by HL7
# ORU or the API, set the reading state), "radtriage" (the readers' own
# buttons), or "auto": the RIS once it has sent a report, RadTriage until then.
READING_ENDS_IN_CHOICES = ("auto", "ris", "radtriage")
RADTRIAGE_READING_ENDS_IN = env_str("RADTRIAGE_READING_ENDS_IN", "auto")
if RADTRIAGE_READING_ENDS_IN not in READING_ENDS_IN_CHOICES:
    raise ImproperlyConfigured(
        f"RADTRIAGE_READING_ENDS_IN must be one of {', '.join(READING_ENDS_IN_CHOICES)}"
    )
# AI scoring (inference/): the models folder, ONNX Runtime threads and devices,
# batch size and the scoring task's limits.
RADTRIAGE_MODELS_DIR = Path(
    env_str("RADTRIAGE_MODELS_DIR", str(BASE_DIR / "inference" / "demo_models"))
)
RADTRIAGE_NEW_MODEL_MODE = env_str("RADTRIAGE_NEW_MODEL_MODE", "active")
if RADTRIAGE_NEW_MODEL_MODE not in ("active", "shadow", "disabled"):
    raise ImproperlyConfigured(
        "RADTRIAGE_NEW_MODEL_MODE must be active, shadow or disabled"
    )
# auto: the GPU when CUDA is usable, else the CPU (said once at start); cuda:
# the GPU or the model-running processes refuse to start; cpu: never the GPU.
RADTRIAGE_INFERENCE_DEVICE = env_str("RADTRIAGE_INFERENCE_DEVICE", "auto").lower()
if RADTRIAGE_INFERENCE_DEVICE not in ("auto", "cpu", "cuda"):
    raise ImproperlyConfigured("RADTRIAGE_INFERENCE_DEVICE must be auto, cpu or cuda")
RADTRIAGE_ONNX_INTRA_OP_THREADS = env_int(
    "RADTRIAGE_ONNX_INTRA_OP_THREADS", 2, minimum=0
)
RADTRIAGE_ONNX_INTER_OP_THREADS = env_int(
    "RADTRIAGE_ONNX_INTER_OP_THREADS", 1, minimum=0
)
RADTRIAGE_INFERENCE_BATCH = env_int("RADTRIAGE_INFERENCE_BATCH", 64, minimum=1)
RADTRIAGE_ONNX_SPIN = env_bool("RADTRIAGE_ONNX_SPIN", False)
RADTRIAGE_SCORE_SOFT_TIME_LIMIT = env_int(
    "RADTRIAGE_SCORE_SOFT_TIME_LIMIT", 300, minimum=5
)
RADTRIAGE_SCORE_TIME_LIMIT = env_int(
    "RADTRIAGE_SCORE_TIME_LIMIT", RADTRIAGE_SCORE_SOFT_TIME_LIMIT + 60, minimum=10
)
RADTRIAGE_SCORE_MAX_RETRIES = env_int("RADTRIAGE_SCORE_MAX_RETRIES", 3, minimum=0)
# A stable study still pending or queued this long is enqueued again.
RADTRIAGE_SCORING_STUCK_SECONDS = env_float(
    "RADTRIAGE_SCORING_STUCK_SECONDS", 300.0, minimum=1.0
)
# A scoring run's lease (renewed every third of it while the run goes on): a
# study whose worker died is queued again this long (plus a reclaim sweep)
# after the last renewal.
RADTRIAGE_SCORING_LEASE_SECONDS = env_float(
    "RADTRIAGE_SCORING_LEASE_SECONDS", 15.0, minimum=1.0
)
# A scoring follow-up still pending this long lost its runner: the sweeper runs it.
RADTRIAGE_FOLLOWUP_GRACE_SECONDS = env_float(
    "RADTRIAGE_FOLLOWUP_GRACE_SECONDS", 5.0, minimum=0.0
)
# The worklist's priority engine (points; see worklist/priority.py). SLA targets
# per patient class are RADTRIAGE_SLA_MINUTES, shared with the reports.
try:
    RADTRIAGE_PRIORITY_ORDER_POINTS = parse_points(
        env_str("RADTRIAGE_PRIORITY_ORDER_POINTS", "stat=40,urgent=20,routine=0"),
        [p.value for p in OrderPriority],
    )
    RADTRIAGE_PRIORITY_CLASS_POINTS = parse_points(
        env_str(
            "RADTRIAGE_PRIORITY_CLASS_POINTS",
            "emergency=30,inpatient=15,outpatient=0,unknown=5",
        ),
        [c.value for c in PatientClass],
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"RADTRIAGE_PRIORITY_*_POINTS: {exc}") from exc
RADTRIAGE_PRIORITY_AI_POINTS = env_float(
    "RADTRIAGE_PRIORITY_AI_POINTS", 100.0, minimum=0
)
RADTRIAGE_PRIORITY_WAITING_POINTS = env_float(
    "RADTRIAGE_PRIORITY_WAITING_POINTS", 20.0, minimum=0
)
RADTRIAGE_PRIORITY_AGE_POINTS = env_float(
    "RADTRIAGE_PRIORITY_AGE_POINTS", 5.0, minimum=0
)
# A study is overdue (and AI reordering can no longer pass it) after this many
# times its SLA target.
RADTRIAGE_PRIORITY_MAX_WAIT_FACTOR = env_float(
    "RADTRIAGE_PRIORITY_MAX_WAIT_FACTOR", 1.5, minimum=0.01
)
# A claimed study with no activity for this long is released for others.
RADTRIAGE_CLAIM_AUTO_RELEASE_MINUTES = env_float(
    "RADTRIAGE_CLAIM_AUTO_RELEASE_MINUTES", 30.0, minimum=1.0
)
# Report-turnaround targets (acquired -> final) per patient class, in minutes.
try:
    RADTRIAGE_SLA_MINUTES = parse_sla_minutes(
        env_str("RADTRIAGE_SLA_MINUTES", DEFAULT_SLA_MINUTES)
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"RADTRIAGE_SLA_MINUTES: {exc}") from exc
# Score drift (population stability index) above this shows a warning.
RADTRIAGE_PSI_WARNING = env_float("RADTRIAGE_PSI_WARNING", 0.2, minimum=0.0)

# Critical-finding alerts: escalation when not acknowledged in time.
try:
    RADTRIAGE_ALERT_ESCALATION_MINUTES = parse_escalation_minutes(
        env_str("RADTRIAGE_ALERT_ESCALATION_MINUTES", "")
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"RADTRIAGE_ALERT_ESCALATION_MINUTES: {exc}") from exc
# Escalation emails; empty: the department heads' addresses.
RADTRIAGE_ALERT_EMAILS = env_list("RADTRIAGE_ALERT_EMAILS", [])
RADTRIAGE_ALERT_WEBHOOK_URL = env_str("RADTRIAGE_ALERT_WEBHOOK_URL", "")
RADTRIAGE_ALERT_WEBHOOK_SECRET = env_secret("RADTRIAGE_ALERT_WEBHOOK_SECRET", "")
RADTRIAGE_ALERT_WEBHOOK_TIMEOUT = env_float(
    "RADTRIAGE_ALERT_WEBHOOK_TIMEOUT", 5.0, minimum=0.1
)
RADTRIAGE_ALERT_WEBHOOK_MAX_RETRIES = env_int(
    "RADTRIAGE_ALERT_WEBHOOK_MAX_RETRIES", 5, minimum=0
)
# The board's alert-fatigue view: alerts per shift against this cap.
RADTRIAGE_ALERT_SHIFT_HOURS = env_int("RADTRIAGE_ALERT_SHIFT_HOURS", 8, minimum=1)
RADTRIAGE_ALERT_SHIFT_CAP = env_int("RADTRIAGE_ALERT_SHIFT_CAP", 10, minimum=1)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "radtriage@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # pynetdicom logs whole datasets at DEBUG, PHI included.
        "pynetdicom": {"level": "WARNING"},
        # In the embedded mode these log every periodic sweep twice a second.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
}
