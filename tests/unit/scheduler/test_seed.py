"""The default watch list is seeded once, and only into an empty watch list."""

from __future__ import annotations

from cli.scheduler import seed_watch_list
from rebuilder.store.memory import MemoryStore


def _names(store: MemoryStore) -> list[str]:
    return sorted(p.name for p in store.watched())


def test_an_empty_watch_list_gets_the_defaults_once() -> None:
    store = MemoryStore()
    assert seed_watch_list(store, ["certifi", "packaging"]) == ["certifi", "packaging"]
    store.watch_remove(["certifi"])
    assert seed_watch_list(store, ["certifi", "packaging"]) == []
    assert _names(store) == ["packaging"]  # the removal sticks


def test_a_watch_list_the_operator_made_is_left_as_it_is() -> None:
    store = MemoryStore()
    store.watch_add(["attrs", "idna", "six"])
    assert seed_watch_list(store, ["certifi", "packaging"]) == []
    assert _names(store) == ["attrs", "idna", "six"]
    # Emptying it later does not bring the defaults back either.
    store.watch_remove(["attrs", "idna", "six"])
    assert seed_watch_list(store, ["certifi", "packaging"]) == []
    assert _names(store) == []
