"""The ``requires`` graph: problems (unknown names, cycles) and the order of starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._validate import suggest
from .errors import Problem

__all__ = ["problems", "start_order"]


def problems(
    requires: Mapping[str, Sequence[str]], prefix: str = "", *, unknown: bool = True
) -> list[Problem]:
    """Each unknown name (if *unknown*) and each cycle, at ``<prefix><name>.requires``."""
    found: list[Problem] = []
    if unknown:
        for name, wanted in requires.items():
            for index, other in enumerate(wanted):
                if other not in requires:
                    found.append(
                        Problem(
                            f"{prefix}{name}.requires[{index}]",
                            f"unknown service {other!r}" + suggest(other, list(requires)),
                        )
                    )
    reported: set[str] = set()
    for cycle in _cycles(requires):
        if reported.isdisjoint(cycle):
            reported.update(cycle)
            path = " -> ".join([*cycle, cycle[0]])
            found.append(Problem(f"{prefix}{cycle[0]}.requires", f"dependency cycle: {path}"))
    return found


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
    rest = [n for n in names if n not in placed]
    while rest:
        for name in rest:
            if all(r in placed or r not in requires for r in requires[name]):
                order.append(name)
                placed.add(name)
                rest.remove(name)
                break
        else:  # a cycle after all: keep the order given
            order += rest
            break
    return order
