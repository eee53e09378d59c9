"""few_collections: the collector tuned while planning, and exactly that undone afterwards."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from reconciler.runner import few_collections


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_nested_uses_tune_once_and_the_outermost_restores() -> None:
    gc.set_threshold(700, 10, 10)
    with few_collections(young=5_000):
        assert gc.get_threshold() == (5_000, 10, 10)
        assert gc.get_freeze_count() > 0
        with few_collections(young=9_000):
            assert gc.get_threshold() == (5_000, 10, 10)
        assert gc.get_threshold() == (5_000, 10, 10) and gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_overlapping_uses_in_threads_restore_when_the_last_one_ends() -> None:
    gc.set_threshold(700, 10, 10)
    inside, release = threading.Barrier(3), threading.Event()

    def plan() -> None:
        with few_collections(young=5_000):
            inside.wait(timeout=10)
            release.wait(timeout=10)

    first = threading.Thread(target=plan)
    first.start()
    with few_collections(young=5_000):
        second = threading.Thread(target=plan)
        second.start()
        inside.wait(timeout=10)
    # This thread, the first user, has left; the two others still plan.
    assert gc.get_threshold() == (5_000, 10, 10)
    release.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_what_others_set_is_left_as_they_set_it() -> None:
    gc.set_threshold(30_000, 10, 10)  # already above ``young``: nothing to change
    with few_collections(young=5_000):
        assert gc.get_threshold() == (30_000, 10, 10)
    assert gc.get_threshold() == (30_000, 10, 10)

    gc.set_threshold(700, 10, 10)
    with few_collections(young=5_000):
        gc.set_threshold(1_000, 5, 5)  # someone else's choice, made meanwhile
    assert gc.get_threshold() == (1_000, 5, 5)

    gc.freeze()  # frozen by the caller before planning
    frozen = gc.get_freeze_count()
    with few_collections():
        pass
    assert gc.get_freeze_count() > frozen // 2  # still frozen (a few may have been freed)
