"""The worker's main process reaps exited pool processes every POOL_WATCH_S on its own
event loop (a kombu Hub), once per hub, and only with the failure hooks on."""

from types import SimpleNamespace

from kombu.asynchronous import Hub

from pipeline import failure_hooks


def _consumer():
    calls = []
    return SimpleNamespace(hub=Hub(), pool=SimpleNamespace(maintain_pool=lambda: calls.append(1))), calls


def test_the_pool_is_maintained_every_quarter_second_on_the_workers_loop(settings):
    settings.FAILURE_HOOKS = True
    consumer, calls = _consumer()

    failure_hooks.watch_pool(sender=consumer)
    failure_hooks.watch_pool(sender=consumer)  # worker_ready again: still one entry

    entries = list(consumer.hub.timer.queue)
    assert len(entries) == 1
    entries[0].entry()  # what the loop does when the entry is due
    assert calls == [1]
    assert failure_hooks.POOL_WATCH_S <= 0.5


def test_with_the_hooks_off_the_pool_keeps_its_own_timer_only(settings):
    settings.FAILURE_HOOKS = False
    consumer, _ = _consumer()

    failure_hooks.watch_pool(sender=consumer)

    assert list(consumer.hub.timer.queue) == []
