"""Conveyor settings: one env-driven module.

Every value comes from the environment through `config.env`, which fails loudly on a
bad value. Invariants between settings (heartbeat vs stale threshold, requeue delay vs
start threshold, signing keys) are Django system checks in `config.checks`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CONVEYOR_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)
# The embedded platform (README's first command): SQLite, moto, development keys.
EMBEDDED = env_bool("CONVEYOR_EMBEDDED", False)
# The embedded defaults (README's first command) run with a development key; a
# deployment without DJANGO_SECRET_KEY and without DEBUG refuses to start.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not EMBEDDED:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set unless DJANGO_DEBUG=1 or CONVEYOR_EMBEDDED=1")
    SECRET_KEY = "conveyor-embedded-development-key-not-for-production-use-0123456789"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_filters",
    "django_prometheus",
    "axes",
    "config",  # registers the system checks of config/checks.py
    "executions",  # also the label of the tenancy and workflows models
    "messaging",
    "pipeline",
    "scheduler",
    "reaper",
    "frontend",
    "incidents",
    "observability",
    "devtools",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.RefuseUnstorableText",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username and address is refused before a password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
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

# --- database -------------------------------------------------------------------------
# SQLite is the zero-setup default; PostgreSQL through DATABASE_URL in production and
# tests. SQLite shared by web, worker and beat needs WAL, a busy timeout and IMMEDIATE
# transactions, or they hit "database is locked" (which the classifier would rightly call
# C-0002).
DATABASE_URL = env_str("DATABASE_URL", "")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the default database lives there
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'conveyor.sqlite3'}"
try:
    _database = dj_database_url.parse(DATABASE_URL)
except Exception as exc:  # dj_database_url raises several types for a malformed URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if _database["ENGINE"] not in {"django.db.backends.sqlite3", "django.db.backends.postgresql"}:
    raise ImproperlyConfigured(f"DATABASE_URL must be sqlite:// or postgres://, not {_database['ENGINE']}")
# Workers want persistent connections (a connection per task costs a round trip);
# health checks drop a connection the server closed before a task uses it.
_database["CONN_MAX_AGE"] = env_int("CONVEYOR_DB_CONN_MAX_AGE", 60, minimum=0)
_database["CONN_HEALTH_CHECKS"] = True
if _database["ENGINE"] == "django.db.backends.sqlite3":
    _database["OPTIONS"] = {
        "timeout": env_int("CONVEYOR_SQLITE_BUSY_TIMEOUT_S", 30, minimum=1),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
else:
    _database.setdefault("OPTIONS", {})
    _database["OPTIONS"].setdefault("connect_timeout", env_int("CONVEYOR_DB_CONNECT_TIMEOUT_S", 5, minimum=1))
    _database["TEST"] = {"NAME": env_str("CONVEYOR_TEST_DATABASE_NAME", "test_conveyor")}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/runs/"

# --- login throttling (django-axes) ------------------------------------------------------
# Failed sign-ins on the runs pages and the admin are counted per username *and* address:
# by username alone anyone could lock a user out, by address alone one guesser would lock
# out a whole office behind one NAT. A success clears the count; each failure during a
# lockout starts its cool-off again. Attempts are rows (AxesDatabaseHandler), so every
# web process sees the same count.
AXES_FAILURE_LIMIT = env_int("CONVEYOR_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CONVEYOR_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "frontend.lockout.locked_out"  # 429, says for how long and what still works
AXES_VERBOSE = False

# --- Conveyor: queue and broker -------------------------------------------------------
# The same settings serve moto's SQS server locally (AWS_ENDPOINT_URL_SQS points at it)
# and AWS SQS in production (AWS_ENDPOINT_URL_SQS unset).
SQS_ENDPOINT_URL = env_str("AWS_ENDPOINT_URL_SQS", "")
AWS_REGION = env_str("AWS_DEFAULT_REGION", "us-east-1")
QUEUE_PREFIX = env_str("CONVEYOR_QUEUE_PREFIX", "conveyor-")
RUNS_QUEUE = "runs"
MAINTENANCE_QUEUE = "maintenance"
DEAD_LETTER_QUEUE = "dead-letter"
SQS_WAIT_TIME_SECONDS = env_int("CONVEYOR_SQS_WAIT_TIME_SECONDS", 10, minimum=0, maximum=20)
# With long polling, a zero interval costs nothing while idle and keeps a busy pool fed
# (measured: 4 tasks/s at 1.0 against 100+ at 0 with prefork x2).
SQS_POLLING_INTERVAL = env_float("CONVEYOR_SQS_POLLING_INTERVAL", 0.0, minimum=0.0)
SQS_VISIBILITY_TIMEOUT = env_int("CONVEYOR_SQS_VISIBILITY_TIMEOUT", 1800, minimum=1, maximum=43200)
# A producer must fail fast when the queue is down: the run is resolved at once to
# system_error with the producer's code rather than hanging a web request.
SQS_CONNECT_TIMEOUT_S = env_float("CONVEYOR_SQS_CONNECT_TIMEOUT_S", 3.0, minimum=0.1)
SQS_READ_TIMEOUT_S = env_float("CONVEYOR_SQS_READ_TIMEOUT_S", 10.0, minimum=0.1)
SQS_MAX_ATTEMPTS = env_int("CONVEYOR_SQS_MAX_ATTEMPTS", 2, minimum=1)
# Broker outages (messaging/broker.py, docs/decisions/0007-broker-outages.md). Workers, beat
# and producers create a missing platform queue again unless this is off (production
# where IAM forbids sqs:CreateQueue: then a missing queue is one clear error naming it).
SQS_CREATE_QUEUES = env_bool("CONVEYOR_SQS_CREATE_QUEUES", True)
# A consumer that completed no receive for the long-poll wait plus this margin rebuilds
# its SQS connection and polls again (a receive itself times out at half the margin).
CONSUMER_STALL_MARGIN_S = env_float("CONVEYOR_CONSUMER_STALL_MARGIN_S", 10.0, minimum=0.5)
# The probe calls a consumer unhealthy (degraded: receives fail; stalled: none is even
# attempted) after this long; by default three stall periods.
CONSUMER_UNHEALTHY_AFTER_S = env_float(
    "CONVEYOR_CONSUMER_UNHEALTHY_AFTER_S", 3 * (SQS_WAIT_TIME_SECONDS + CONSUMER_STALL_MARGIN_S), minimum=1.0
)
# Last resort: a worker whose event loop has not turned for this long exits non-zero.
CONSUMER_EXIT_AFTER_S = env_float("CONVEYOR_CONSUMER_EXIT_AFTER_S", 300.0, minimum=5.0)
WORKER_LIVENESS_INTERVAL_S = env_float("CONVEYOR_WORKER_LIVENESS_INTERVAL_S", 10.0, minimum=0.2)

# Queue messages are signed; the previous key stays accepted during a rotation.
MESSAGE_SIGNING_KEY = env_str("CONVEYOR_MESSAGE_SIGNING_KEY", "")
MESSAGE_SIGNING_PREVIOUS_KEYS = env_list("CONVEYOR_MESSAGE_SIGNING_PREVIOUS_KEYS", [])
if not MESSAGE_SIGNING_KEY:
    MESSAGE_SIGNING_KEY = SECRET_KEY  # checked: must differ in production (config.checks)

# Organization secrets are encrypted at rest with Fernet; list several keys to rotate
# (the first encrypts, all decrypt).
SECRETS_ENCRYPTION_KEYS = env_list("CONVEYOR_SECRETS_ENCRYPTION_KEYS", [])

# --- Conveyor: thresholds (DESIGN.md §4) ----------------------------------------------
# A pending run older than this was never received (P-0005).
START_THRESHOLD_S = env_int("CONVEYOR_START_THRESHOLD_S", 15 * 60, minimum=1)
# A running run's supervisor refreshes heartbeat_at this often; a heartbeat older than
# STALE_AFTER_S (at least 5x: system check) means its worker is gone (P-0001/P-0003).
HEARTBEAT_INTERVAL_S = env_float("CONVEYOR_HEARTBEAT_INTERVAL_S", 10.0, minimum=0.05)
STALE_AFTER_S = env_float("CONVEYOR_STALE_AFTER_S", 60.0, minimum=0.25)
# Celery's failure hooks (pipeline.failure_hooks, docs/decisions/0009): a worker's main
# process writes a run whose pool process died (P-0003/P-0001) or hit a Celery time limit
# (E-0001) at once; off, only the reaper finds them (after STALE_AFTER_S). On by default.
FAILURE_HOOKS = env_bool("CONVEYOR_FAILURE_HOOKS", True)
# The reaper: beat schedules it every REAPER_INTERVAL_S; one sweep at a time (a lease).
REAPER_INTERVAL_S = env_float("CONVEYOR_REAPER_INTERVAL_S", 60.0, minimum=0.5)
REAPER_BATCH_SIZE = env_int("CONVEYOR_REAPER_BATCH_SIZE", 500, minimum=1)
REAPER_LEASE_S = env_float("CONVEYOR_REAPER_LEASE_S", 300.0, minimum=1.0)

# A run's deadline unless its workflow sets one (E-0001 past it).
RUN_DEADLINE_S = env_int("CONVEYOR_RUN_DEADLINE_S", 3600, minimum=1)
# Concurrency: a run over a limit waits REQUEUE_DELAY_S in SQS and is tried again.
REQUEUE_DELAY_S = env_int("CONVEYOR_REQUEUE_DELAY_S", 30, minimum=0, maximum=900)
GLOBAL_CONCURRENCY_LIMIT = env_int("CONVEYOR_GLOBAL_CONCURRENCY_LIMIT", 0, minimum=0)  # 0: no cap
DEFAULT_WORKFLOW_CONCURRENCY = env_int("CONVEYOR_DEFAULT_WORKFLOW_CONCURRENCY", 0, minimum=0)
DEFAULT_RUNTIME = env_choice("CONVEYOR_DEFAULT_RUNTIME", "isolated", {"isolated", "inline"})
RUNTIME_MEMORY_LIMIT_MB = env_int("CONVEYOR_RUNTIME_MEMORY_LIMIT_MB", 1024, minimum=0)  # 0: no limit
WORKER_SOFT_SHUTDOWN_TIMEOUT_S = env_float("CONVEYOR_WORKER_SOFT_SHUTDOWN_TIMEOUT_S", 30.0, minimum=0.0)

# --- Conveyor: actions (DESIGN.md §5) -------------------------------------------------
# Private, loopback and link-local destinations are refused unless listed here (CIDRs).
HTTP_ACTION_ALLOWED_NETWORKS = env_list("CONVEYOR_HTTP_ALLOWED_NETWORKS", [])
HTTP_ACTION_TIMEOUT_S = env_float("CONVEYOR_HTTP_TIMEOUT_S", 15.0, minimum=0.1)
HTTP_ACTION_MAX_REDIRECTS = env_int("CONVEYOR_HTTP_MAX_REDIRECTS", 5, minimum=0, maximum=20)
HTTP_ACTION_MAX_RESPONSE_BYTES = env_int("CONVEYOR_HTTP_MAX_RESPONSE_BYTES", 1_000_000, minimum=1024)
# Extra CA bundle for the HTTP action's TLS verification (empty: the system's).
HTTP_ACTION_CA_BUNDLE = env_str("CONVEYOR_HTTP_CA_BUNDLE", "")
DELAY_ACTION_MAX_S = env_float("CONVEYOR_DELAY_MAX_S", 300.0, minimum=0.0)
PYTHON_CALLABLE_ALLOWLIST = env_list(
    "CONVEYOR_PYTHON_CALLABLES",
    ["workflows.actions.examples.add_numbers", "workflows.actions.examples.echo"],
)
MAX_STEPS_PER_WORKFLOW = env_int("CONVEYOR_MAX_STEPS_PER_WORKFLOW", 100, minimum=1)
# What JSON the platform accepts anywhere (workflows/payloads.py): nesting depth, and the
# size of a workflow definition (as compact JSON).
JSON_MAX_DEPTH = env_int("CONVEYOR_JSON_MAX_DEPTH", 32, minimum=4, maximum=200)
MAX_DEFINITION_BYTES = env_int("CONVEYOR_MAX_DEFINITION_BYTES", 256 * 1024, minimum=1024)
# What a run may produce (workflows/limits.py, docs/decisions/0010-input-and-output-limits.md):
# one step's output (and its rendered config), and every step's output together, as compact
# UTF-8 JSON. Checked while templates render, so a template that doubles its input each step
# stops at the step that crosses the limit.
MAX_STEP_OUTPUT_BYTES = env_int("CONVEYOR_MAX_STEP_OUTPUT_BYTES", 1024 * 1024, minimum=1024, maximum=64 * 1024 * 1024)
MAX_RUN_OUTPUT_BYTES = env_int(
    "CONVEYOR_MAX_RUN_OUTPUT_BYTES", 4 * 1024 * 1024, minimum=1024, maximum=256 * 1024 * 1024
)

# --- Conveyor: observability (DESIGN.md §6, docs/decisions/0005-worker-metrics.md) ----
METRICS_WINDOW_S = env_int("CONVEYOR_METRICS_WINDOW_S", 3600, minimum=60)
METRICS_MANAGED_ORGS = env_list("CONVEYOR_METRICS_MANAGED_ORGS", [])
# Queues whose depth /metrics reads (prefix-less names).
METRICS_QUEUES = [RUNS_QUEUE, MAINTENANCE_QUEUE, DEAD_LETTER_QUEUE]
METRICS_QUEUE_TIMEOUT_S = env_float("CONVEYOR_METRICS_QUEUE_TIMEOUT_S", 1.0, minimum=0.1)
METRICS_QUEUE_CACHE_S = env_float("CONVEYOR_METRICS_QUEUE_CACHE_S", 15.0, minimum=0.0)
# The availability objective the health page measures the error budget against: the share
# of counted runs (success, error, system_error) that must not end system_error over 30
# days. deploy/prometheus/alerts.yml's conveyor:slo_objective:ratio is the alerts' copy:
# change both (tests/test_health_page_objective_matches_the_rules.py keeps the defaults equal).
SLO_OBJECTIVE = env_float("CONVEYOR_SLO_OBJECTIVE", 0.995, minimum=0.0)
if not 0.0 < SLO_OBJECTIVE < 1.0:
    raise ImproperlyConfigured(f"CONVEYOR_SLO_OBJECTIVE={SLO_OBJECTIVE} must be between 0 and 1, e.g. 0.995")
# How often the maintenance worker rolls finished runs up into hourly counts per status
# (observability.RunHour, which the health page's SLI reads; decision 0015).
HEALTH_ROLLUP_INTERVAL_S = env_float("CONVEYOR_HEALTH_ROLLUP_INTERVAL_S", 300.0, minimum=10.0)
WORKER_METRICS_PORT = env_int("CONVEYOR_WORKER_METRICS_PORT", 0, minimum=0, maximum=65535)
WORKER_METRICS_ADDR = env_str("CONVEYOR_WORKER_METRICS_ADDR", "0.0.0.0")
DIGEST_PERIODS = env_list("CONVEYOR_DIGEST_PERIODS", ["daily", "weekly"])
if set(DIGEST_PERIODS) - {"daily", "weekly"}:
    raise ImproperlyConfigured(f"CONVEYOR_DIGEST_PERIODS: daily and/or weekly, not {DIGEST_PERIODS}")
DIGEST_HOUR_UTC = env_int("CONVEYOR_DIGEST_HOUR_UTC", 6, minimum=0, maximum=23)
DIGEST_WEEKDAY = env_int("CONVEYOR_DIGEST_WEEKDAY", 1, minimum=0, maximum=6)
DIGEST_TOP_WORKFLOWS = env_int("CONVEYOR_DIGEST_TOP_WORKFLOWS", 5, minimum=1)
DIGEST_RECENT_ERRORS = 10  # system errors a digest lists one by one
DEFAULT_FROM_EMAIL = env_str("CONVEYOR_EMAIL_FROM", "Conveyor <conveyor@localhost>")
EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if (EMBEDDED or DEBUG)
    else "django.core.mail.backends.smtp.EmailBackend",
)
# Retention: finished runs older than this go, with their steps and transitions.
RETENTION_DAYS = env_int("CONVEYOR_RETENTION_DAYS", 90, minimum=1)
RETENTION_BATCH_SIZE = env_int("CONVEYOR_RETENTION_BATCH_SIZE", 500, minimum=1)
RETENTION_MAX_BATCHES = env_int("CONVEYOR_RETENTION_MAX_BATCHES", 200, minimum=1)
RETENTION_INTERVAL_S = env_int("CONVEYOR_RETENTION_INTERVAL_S", 3600, minimum=60)

# --- Conveyor: platform incidents (docs/decisions/0012-incidents.md) -------------------
# The detector (beat, maintenance queue, every INCIDENT_DETECT_S) opens an incident when
# INCIDENT_THRESHOLD system errors of one category (or one code) fall within
# INCIDENT_WINDOW_S, and resolves it after INCIDENT_QUIET_S without one.
INCIDENT_THRESHOLD = env_int("CONVEYOR_INCIDENT_THRESHOLD", 5, minimum=1)
INCIDENT_WINDOW_S = env_int("CONVEYOR_INCIDENT_WINDOW_S", 300, minimum=1)
INCIDENT_QUIET_S = env_int("CONVEYOR_INCIDENT_QUIET_S", 600, minimum=1)
INCIDENT_GROUP_BY = env_choice("CONVEYOR_INCIDENT_GROUP_BY", "category", {"category", "code"})
INCIDENT_DETECT_S = env_float("CONVEYOR_INCIDENT_DETECT_S", 30.0, minimum=0.2)
INCIDENT_LEASE_S = env_float("CONVEYOR_INCIDENT_LEASE_S", 300.0, minimum=1.0)
# Who is told: staff addresses (Django's email backend) and one outgoing webhook, signed
# with the v2 scheme of docs/webhooks.md and subject to the HTTP action's address policy.
INCIDENT_EMAILS = env_list("CONVEYOR_INCIDENT_EMAILS", [])
INCIDENT_WEBHOOK_URL = env_str("CONVEYOR_INCIDENT_WEBHOOK_URL", "")
INCIDENT_WEBHOOK_SECRET = env_str("CONVEYOR_INCIDENT_WEBHOOK_SECRET", "")
if INCIDENT_WEBHOOK_URL and not INCIDENT_WEBHOOK_SECRET:
    raise ImproperlyConfigured("CONVEYOR_INCIDENT_WEBHOOK_URL is set: CONVEYOR_INCIDENT_WEBHOOK_SECRET must be too")
INCIDENT_WEBHOOK_TIMEOUT_S = env_float("CONVEYOR_INCIDENT_WEBHOOK_TIMEOUT_S", 5.0, minimum=0.1)

# --- Conveyor: triggers (DESIGN.md §5, docs/decisions/0004-triggers.md) ----------------
# Cron dispatcher: a beat tick every SCHEDULE_TICK_S; after downtime one catch-up run for
# the latest missed fire time, if it is at most SCHEDULE_CATCHUP_WINDOW_S old.
SCHEDULE_TICK_S = env_float("CONVEYOR_SCHEDULE_TICK_S", 10.0, minimum=0.2)
SCHEDULE_CATCHUP_WINDOW_S = env_int("CONVEYOR_SCHEDULE_CATCHUP_WINDOW_S", 3600, minimum=0)
# Fire times (and blocks) an outage kept from being dispatched are recorded as runs of
# their own (CS-0002, BS-0002); at most this many per schedule (per block workflow) and
# pass, the older rest counted in one summary record.
MISSED_RUN_RECORDS_MAX = env_int("CONVEYOR_MISSED_RUN_RECORDS_MAX", 100, minimum=0)
# EVM chains block triggers may use: a JSON list of
# {"chain_id": 1, "name": "mainnet", "rpc_url": "https://...", "confirmations": 12}
# (its shape is checked by scheduler.chains, system check scheduler.E001).
try:
    CHAINS = json.loads(env_str("CONVEYOR_CHAINS", "[]"))
except ValueError as exc:
    raise ImproperlyConfigured(f"CONVEYOR_CHAINS is not valid JSON: {exc}") from None
BLOCK_POLL_S = env_float("CONVEYOR_BLOCK_POLL_S", 5.0, minimum=0.2)
BLOCK_RPC_TIMEOUT_S = env_float("CONVEYOR_BLOCK_RPC_TIMEOUT_S", 5.0, minimum=0.1)
BLOCK_CATCHUP_MAX_BLOCKS = env_int("CONVEYOR_BLOCK_CATCHUP_MAX_BLOCKS", 500, minimum=1)
BLOCK_POLL_LEASE_S = env_float("CONVEYOR_BLOCK_POLL_LEASE_S", 120.0, minimum=1.0)
# Event webhooks: body size limit and the signed timestamp's tolerance (replay window).
WEBHOOK_MAX_BODY_BYTES = env_int("CONVEYOR_WEBHOOK_MAX_BODY_BYTES", 256 * 1024, minimum=1)
WEBHOOK_TOLERANCE_S = env_int("CONVEYOR_WEBHOOK_TOLERANCE_S", 300, minimum=1)
# System-error retry policy (per workflow, off by default): its periodic scan.
SYSTEM_RETRY_TICK_S = env_float("CONVEYOR_SYSTEM_RETRY_TICK_S", 15.0, minimum=0.2)
SYSTEM_RETRY_LOOKBACK_S = env_int("CONVEYOR_SYSTEM_RETRY_LOOKBACK_S", 24 * 3600, minimum=60)
SYSTEM_RETRY_BATCH_SIZE = env_int("CONVEYOR_SYSTEM_RETRY_BATCH_SIZE", 200, minimum=1)

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "sqs://")
# kombu's SQS transport, made to survive broker outages of every shape (messaging/broker.py).
CELERY_BROKER_TRANSPORT = "messaging.broker:Transport" if CELERY_BROKER_URL.startswith("sqs://") else None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker that lost its connection retries for as long as the outage lasts.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "region": AWS_REGION,
    "queue_name_prefix": QUEUE_PREFIX,
    "visibility_timeout": SQS_VISIBILITY_TIMEOUT,
    "wait_time_seconds": SQS_WAIT_TIME_SECONDS,
    "polling_interval": SQS_POLLING_INTERVAL,
    # A producer whose connection is not yet open must fail fast during an SQS outage:
    # without a bound, kombu retries opening the channel for ever and the caller hangs
    # (the worker's own connection has Celery's broker_connection_* settings instead).
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
    "client-config": {
        "connect_timeout": SQS_CONNECT_TIMEOUT_S,
        "read_timeout": max(SQS_READ_TIMEOUT_S, SQS_WAIT_TIME_SECONDS + 5),
        # One attempt per call: the transport retries a send itself, on a fresh client
        # (messaging/broker.py: Channel._put), CONVEYOR_SQS_MAX_ATTEMPTS times in all.
        "retries": {"total_max_attempts": 1, "mode": "standard"},
    },
}
# A producer decides itself what a failed send means (the run becomes system_error with
# its code at once); Celery's own publish retries would only delay that answer.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_DEFAULT_QUEUE = RUNS_QUEUE
CELERY_TASK_ROUTES = {
    "reaper.*": {"queue": MAINTENANCE_QUEUE},
    "scheduler.tasks.maintenance_*": {"queue": MAINTENANCE_QUEUE},
    "observability.*": {"queue": MAINTENANCE_QUEUE},
    "incidents.*": {"queue": MAINTENANCE_QUEUE},
}
# Acknowledged when the worker accepts the task (DESIGN.md §4, docs/decisions/0001).
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = WORKER_SOFT_SHUTDOWN_TIMEOUT_S
CELERY_WORKER_ENABLE_SOFT_SHUTDOWN_ON_IDLE = False
CELERY_WORKER_CONSUMER = "pipeline.celery_consumer:DeadLetteringConsumer"


def _periodic(task: str, every_s: float, *, schedule=None, args: tuple = ()) -> dict:
    """A beat entry on the maintenance queue whose message expires when the next one is
    due: after an outage the worker discards the backlog instead of draining it."""
    entry = {
        "task": task,
        "schedule": schedule if schedule is not None else every_s,
        "options": {"queue": MAINTENANCE_QUEUE, "expires": float(every_s)},
    }
    if args:
        entry["args"] = args
    return entry


CELERY_BEAT_SCHEDULE = {
    "reaper-sweep": _periodic("reaper.tasks.sweep", REAPER_INTERVAL_S),
    "scheduler-tick": _periodic("scheduler.tasks.maintenance_schedule_tick", SCHEDULE_TICK_S),
    "system-retry-tick": _periodic("scheduler.tasks.maintenance_system_retry_tick", SYSTEM_RETRY_TICK_S),
    "incident-detection": _periodic("incidents.tasks.detect", INCIDENT_DETECT_S),
    "retention-purge": _periodic("observability.tasks.purge_expired_runs", float(RETENTION_INTERVAL_S)),
    "health-rollup": _periodic("observability.tasks.roll_up_run_hours", HEALTH_ROLLUP_INTERVAL_S),
}
if CHAINS:  # no poll messages every few seconds on a platform without block triggers
    CELERY_BEAT_SCHEDULE["block-poll"] = _periodic("scheduler.tasks.maintenance_block_poll", BLOCK_POLL_S)
for _period in DIGEST_PERIODS:
    CELERY_BEAT_SCHEDULE[f"failure-digest-{_period}"] = _periodic(
        "observability.tasks.send_failure_digests",
        86400.0 if _period == "daily" else 7 * 86400.0,
        schedule=crontab(minute=0, hour=DIGEST_HOUR_UTC)
        if _period == "daily"
        else crontab(minute=0, hour=DIGEST_HOUR_UTC, day_of_week=DIGEST_WEEKDAY),
        args=(_period,),
    )

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, and only JSON the platform can store (any other content type is a 415).
    "DEFAULT_PARSER_CLASSES": ["executions.api.parsers.SafeJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Conveyor API",
    "VERSION": "1.0.0",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "failures.statuses.ExecutionStatus",
        "StepStatusEnum": "executions.models.StepStatus",
        "RunTriggerTypeEnum": "failures.statuses.TriggerType",
        "WorkflowTriggerTypeEnum": "workflows.triggers.WORKFLOW_TRIGGERS",
    },
    # The answers DRF gives every view (401, 403, 404, 400, 415, 406) and the webhook intake
    # (a plain Django view) are documented by hooks, so the schema lists every status.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "executions.api.schema.document_common_responses",
        "scheduler.schema.document_webhook_intake",
    ],
}
# Rate limits of the trigger, re-run and webhook endpoints are counted in this cache: the
# in-process default multiplies a limit by the number of web processes, so production
# points it at a shared cache (Redis, or DatabaseCache after `manage.py createcachetable`).
CACHES = {
    "default": {
        "BACKEND": env_str("CONVEYOR_CACHE_BACKEND", "django.core.cache.backends.locmem.LocMemCache"),
        "LOCATION": env_str("CONVEYOR_CACHE_LOCATION", "conveyor"),
    }
}
CONVEYOR_TRIGGER_RATE = env_str("CONVEYOR_TRIGGER_RATE", "60/minute")
CONVEYOR_WEBHOOK_RATE = env_str("CONVEYOR_WEBHOOK_RATE", "120/minute")
CONVEYOR_RUN_REFRESH_MS = env_int("CONVEYOR_RUN_REFRESH_MS", 2000, minimum=200)
CONVEYOR_WAIT_DEFAULT_S = env_float("CONVEYOR_WAIT_DEFAULT_S", 30.0, minimum=0.0)
# The wait endpoint answers on PostgreSQL's NOTIFY (executions/notify.py, decision 0016);
# it re-reads the run every POLL_S without it (SQLite, off, listener reconnecting) and
# every RECHECK_S with it (a safety net only).
CONVEYOR_WAIT_NOTIFY = env_bool("CONVEYOR_WAIT_NOTIFY", True)
CONVEYOR_WAIT_POLL_S = env_float("CONVEYOR_WAIT_POLL_S", 0.2, minimum=0.01)
CONVEYOR_WAIT_RECHECK_S = env_float("CONVEYOR_WAIT_RECHECK_S", 5.0, minimum=0.01)

# --- logging --------------------------------------------------------------------------
LOG_JSON = env_bool("CONVEYOR_LOG_JSON", False)
LOG_LEVEL = env_choice("CONVEYOR_LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_JSON else "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "botocore": {"level": "WARNING"}},
}

# --- Conveyor: isolated runtime -------------------------------------------------------
RUNTIME_PYTHON = env_str("CONVEYOR_RUNTIME_PYTHON", "")  # default: the worker's own interpreter
RUNTIME_SPAWN_TIMEOUT_S = env_float("CONVEYOR_RUNTIME_SPAWN_TIMEOUT_S", 30.0, minimum=1.0)
# How an isolated run's child starts (docs/decisions/0013): forked by the pool process's
# fork server (warm), or spawn, a new interpreter per run (the old path, kept as the
# benchmark's baseline and a fallback).
RUNTIME_ISOLATED_START = env_choice("CONVEYOR_ISOLATED_START", "forkserver", {"forkserver", "spawn"})

# Test-only fault points (executions/faults.py); empty in production.
FAULT_INJECTION = env_list("CONVEYOR_FAULT_INJECTION", [])
