"""The ``requires`` graph: problems (unknown names, cycles) and the order of starts."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from ._validate import suggest
from .errors import Problem

__all__ = ["problems", "start_order", "unknown_names"]


def problems(
    requires: Mapping[str, Sequence[str]], prefix: str = "", *, unknown: bool = True
) -> list[Problem]:
    """Each unknown name (if *unknown*) and each cycle, at ``<prefix><name>.requires``."""
    found: list[Problem] = []
    if unknown:
        for name, wanted in requires.items():
            found += unknown_names(name, wanted, requires, prefix)
    reported: set[str] = set()
    for cycle in _cycles(requires):
        if reported.isdisjoint(cycle):
            reported.update(cycle)
            path = " -> ".join([*cycle, cycle[0]])
            found.append(Problem(f"{prefix}{cycle[0]}.requires", f"dependency cycle: {path}"))
    return found


def unknown_names(
    name: str, wanted: Sequence[str], known: Mapping[str, object], prefix: str = ""
) -> list[Problem]:
    """Each name *name* requires that is not in *known*, at ``<prefix><name>.requires[i]``."""
    return [
        Problem(
            f"{prefix}{name}.requires[{index}]",
            f"unknown service {other!r}" + suggest(other, list(known)),
        )
        for index, other in enumerate(wanted)
        if other not in known
    ]


def _cycles(requires: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Some cycle through each strongly tangled part of the graph (iterative DFS)."""
    colour: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []
    for root in requires:
        if root in colour:
            continue
        path: list[str] = [root]
        todo: list[list[str]] = [list(requires.get(root, ()))]
        colour[root] = 1
        while todo:
            if not todo[-1]:
                colour[path.pop()] = 2
                todo.pop()
                continue
            nxt = todo[-1].pop()
            if nxt not in requires:
                continue
            state = colour.get(nxt)
            if state == 1:
                cycles.append(path[path.index(nxt) :])
            elif state is None:
                colour[nxt] = 1
                path.append(nxt)
                todo.append(list(requires[nxt]))
    return cycles


def start_order(requires: Mapping[str, Sequence[str]]) -> list[str]:
    """Services with no requirement in the order given, then the others, each after what it
    requires (and in the order given among those free to go). Assumes no cycle."""
    names = list(requires)
    order = [n for n in names if not requires[n]]
    placed = set(order)
    waiting = {
        n: {r for r in requires[n] if r in requires and r not in placed}
        for n in names
        if n not in placed
    }
    order += _each_after_its_requirements(names, waiting)
    if len(order) < len(names):  # a cycle after all: keep the order given
        placed.update(order)
        order += [n for n in names if n not in placed]
    return order


def _each_after_its_requirements(names: list[str], waiting: dict[str, set[str]]) -> list[str]:
    """The services of *waiting* (each with the names it still waits for), each once all of
    those are placed, the first in *names* first among those free to go (Kahn's algorithm)."""
    index = {name: i for i, name in enumerate(names)}
    dependents: dict[str, list[str]] = {}
    for name, wanted in waiting.items():
        for other in wanted:
            dependents.setdefault(other, []).append(name)
    free = [index[n] for n, wanted in waiting.items() if not wanted]
    heapq.heapify(free)
    order = []
    while free:
        name = names[heapq.heappop(free)]
        order.append(name)
        for dependent in dependents.get(name, ()):
            waiting[dependent].discard(name)
            if not waiting[dependent]:
                heapq.heappush(free, index[dependent])
    return order
