"""Incident metrics (declared once). The open-incidents gauge is read from the database
at scrape time (observability.collectors, part "incidents")."""

from prometheus_client import Counter

from failures.catalogue import SYSTEM_CATEGORIES

INCIDENTS_OPENED = Counter("conveyor_incidents_opened_total", "Platform incidents opened, by category", ["category"])
INCIDENTS_RESOLVED = Counter("conveyor_incidents_resolved_total", "Platform incidents resolved")
INCIDENT_NOTIFICATIONS = Counter(
    "conveyor_incident_notifications_total",
    "Incident notifications, by channel (email, webhook) and outcome (sent, failed, refused)",
    ["channel", "outcome"],
)
DETECTOR_PASSES = Counter(
    "conveyor_incident_detector_passes_total", "Incident detector passes, by outcome", ["outcome"]
)

NO_CATEGORY = "none"  # an incident an operator opened without naming a category

# Every series present from the start (bounded labels: the catalogue's system categories).
for _category in [*sorted(SYSTEM_CATEGORIES), NO_CATEGORY]:
    INCIDENTS_OPENED.labels(category=_category)
for _channel in ("email", "webhook"):
    for _outcome in ("sent", "failed", "refused"):
        INCIDENT_NOTIFICATIONS.labels(channel=_channel, outcome=_outcome)
for _outcome in ("done", "lease_held", "failed"):
    DETECTOR_PASSES.labels(outcome=_outcome)
