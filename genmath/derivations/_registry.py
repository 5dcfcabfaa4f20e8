"""The registry of derivations and exact-numeric checks, and the runner behind `genmath verify`.

Every public module of `genmath.derivations` is a topic: importing it registers its
derivations (and the exact-numeric checks that tie them to the torch code) with
[`register`][genmath.derivations.register]. Topics are discovered, not listed, so adding a
file is all it takes to add a derivation.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterable

from ._engine import Binding, Check, Derivation, Result

_DERIVATIONS: dict[str, Derivation] = {}
_CHECKS: dict[str, Check] = {}
_BINDINGS: dict[str, list[Binding]] = {}  # derivation id -> its bindings
_TOPIC_OF: dict[str, str] = {}  # id -> the module that registered it
_BINDING_TOPICS: dict[str, set[str]] = {}  # derivation id -> the modules that bind it
_LOADED = False
# In a worker process of `run(jobs=...)`: id -> the modules that register it and its bindings,
# so that a worker imports only the topics its items need (importing all costs ~12 s of CPU)
_HINTS: dict[str, tuple[str, ...]] | None = None


def register(item: Derivation | Check | Binding) -> Derivation | Check | Binding:
    """Add a derivation, a check or a binding to the registry; ids must be unique."""
    if isinstance(item, Binding):
        existing = _BINDINGS.setdefault(item.derivation, [])
        if item not in existing:
            existing.append(item)
        module = sys._getframe(1).f_globals.get("__name__", "?")
        _BINDING_TOPICS.setdefault(item.derivation, set()).add(module)
        return item
    if isinstance(item, Derivation):
        table = _DERIVATIONS
    elif isinstance(item, Check):
        table = _CHECKS
    else:
        raise TypeError(f"expected a Derivation, a Check or a Binding, got {type(item).__name__}")
    if item.id in table and table[item.id] is not item:
        raise ValueError(f"duplicate id {item.id!r}: ids are citable and must be unique")
    table[item.id] = item
    _TOPIC_OF[item.id] = sys._getframe(1).f_globals.get("__name__", "?")
    return item


def _load_topics() -> None:
    global _LOADED
    if _LOADED:
        return
    package = importlib.import_module("genmath.derivations")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"genmath.derivations.{info.name}")
    _LOADED = True


def _load_for(item_id: str) -> None:
    """Import what registers ``item_id`` and its bindings: everything, except in a worker."""
    if _HINTS is not None and item_id in _HINTS:
        for module in _HINTS[item_id]:
            importlib.import_module(module)
        return
    _load_topics()


def _hints() -> dict[str, tuple[str, ...]]:
    _load_topics()
    # a binding registered outside the package (a test's planted one) is not importable by a
    # worker: the worker verifies what the package itself registers
    return {
        item_id: tuple(
            sorted(
                {topic}
                | {m for m in _BINDING_TOPICS.get(item_id, ()) if m.startswith("genmath.")}
            )
        )
        for item_id, topic in _TOPIC_OF.items()
        if topic.startswith("genmath.derivations.")
    }


def derivations() -> list[Derivation]:
    """All registered derivations, in id order."""
    _load_topics()
    return [_DERIVATIONS[k] for k in sorted(_DERIVATIONS)]


def checks() -> list[Check]:
    """All registered exact-numeric checks, in id order."""
    _load_topics()
    return [_CHECKS[k] for k in sorted(_CHECKS)]


def bindings_of(derivation_id: str) -> list[Binding]:
    """The bindings registered for a derivation (empty: unbound)."""
    _load_for(derivation_id)
    return list(_BINDINGS.get(derivation_id, ()))


def bindings() -> list[Binding]:
    """Every registered binding, by derivation id."""
    _load_topics()
    return [b for k in sorted(_BINDINGS) for b in _BINDINGS[k]]


def by_topic() -> dict[str, list[Derivation | Check]]:
    """Registered derivations and checks grouped by the module that registered them."""
    _load_topics()
    grouped: dict[str, list[Derivation | Check]] = {}
    for item in [*derivations(), *checks()]:
        grouped.setdefault(_TOPIC_OF[item.id], []).append(item)
    return grouped


def get(item_id: str) -> Derivation | Check:
    """Look a derivation (``D-...``) or a check (``C-...``) up by id."""
    _load_for(item_id)
    if item_id in _DERIVATIONS:
        return _DERIVATIONS[item_id]
    if item_id in _CHECKS:
        return _CHECKS[item_id]
    known = ", ".join(sorted(_DERIVATIONS) + sorted(_CHECKS))
    raise KeyError(f"no derivation or check with id {item_id!r}; known ids: {known}")


def select(only: str | None = None) -> list[Derivation | Check]:
    """Derivations then checks whose id or title matches the glob ``only`` (case-insensitive)."""
    items: list[Derivation | Check] = [*derivations(), *checks()]
    if only is None:
        return items
    pattern = only if any(c in only for c in "*?[") else f"*{only}*"
    pattern = pattern.lower()
    return [
        it
        for it in items
        if fnmatch.fnmatch(it.id.lower(), pattern) or fnmatch.fnmatch(it.title.lower(), pattern)
    ]


def _verify_topic(item_ids: list[str]) -> list[Result]:
    return [get(item_id).verify() for item_id in item_ids]


def _init_worker(hints: dict[str, tuple[str, ...]]) -> None:
    global _HINTS
    import torch

    torch.set_num_threads(1)  # the workers share the machine's cores between them
    _HINTS = hints


def run(
    items: Iterable[Derivation | Check] | None = None,
    progress: Callable[[int, int, Derivation | Check], None] | None = None,
    *,
    jobs: int = 1,
) -> list[Result]:
    """Verify ``items`` (default: everything registered) and return one result each, in order.

    ``jobs > 1`` verifies registered topic items in this process and ``jobs - 1`` worker
    processes (sympy is single-threaded, so this is what uses a machine's cores). Work is
    split by topic: this process takes topics from the front while the workers start up and
    take them from the back, each worker importing only the topics its items need. Items
    registered by the caller at run time, which a fresh worker would not know, are verified
    in this process."""
    todo = list(select() if items is None else items)
    done = 0

    def finish(k: int, result: Result) -> None:
        nonlocal done
        results[k] = result
        done += 1
        if progress is not None:
            progress(done, len(todo), todo[k])

    results: list[Result | None] = [None] * len(todo)
    if jobs <= 1 or len(todo) < 2:
        for k, item in enumerate(todo):
            finish(k, item.verify())
        return results  # type: ignore[return-value]
    import concurrent.futures
    import multiprocessing

    _load_topics()
    groups: dict[str, list[int]] = {}
    for k, item in enumerate(todo):
        topic = _TOPIC_OF.get(item.id, "")
        registered = _DERIVATIONS.get(item.id) is item or _CHECKS.get(item.id) is item
        if topic.startswith("genmath.derivations.") and registered:
            groups.setdefault(topic, []).append(k)
        else:
            finish(k, item.verify())
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has run
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs - 1, mp_context=context, initializer=_init_worker, initargs=(_hints(),)
    ) as pool:
        order = list(groups)
        futures = {}
        for topic in reversed(order):  # the workers start from the back
            futures[topic] = pool.submit(_verify_topic, [todo[k].id for k in groups[topic]])
        for topic in order:  # this process from the front: every topic no worker has taken
            if not futures[topic].cancel():
                continue
            del futures[topic]
            for k in groups[topic]:
                finish(k, todo[k].verify())
        for topic, future in futures.items():
            for k, result in zip(groups[topic], future.result(), strict=True):
                finish(k, result)
    return results  # type: ignore[return-value]
