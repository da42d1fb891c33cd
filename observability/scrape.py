"""Reading a Prometheus text exposition back (tests, the scrape benchmark, operators'
checks): ``samples(text)`` and ``value(text, name, **labels)``."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def matching(text: str, name: str, **labels: str) -> list[Sample]:
    return [s for s in samples(text) if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def value(text: str, name: str, **labels: str) -> float | None:
    """The sum of the samples of *name* whose labels include *labels*; None if there is none."""
    found = matching(text, name, **labels)
    return sum(s.value for s in found) if found else None
