"""``safe_repr``: short, never raising, and a container subclass shown by a few of its items."""

from __future__ import annotations

import collections

from bgservices._saferepr import safe_repr


class Events(list):  # type: ignore[type-arg]
    """A list subclass with the list's own repr, like the testing kit's event capture."""


def test_a_long_container_subclass_is_shown_by_its_first_items() -> None:
    assert safe_repr(Events(range(10_000))) == "Events([0, 1, 2, 3, 4, 5, ...])"


def test_a_long_one_with_a_repr_of_its_own_is_shortened_too() -> None:
    assert safe_repr(collections.Counter(range(10_000))).startswith("Counter({0: 1, 1: 1,")
    assert len(safe_repr(collections.Counter(range(10_000)))) < 100


def test_short_subclasses_with_a_repr_of_their_own_keep_it() -> None:
    point = collections.namedtuple("point", "x y")
    assert safe_repr(point(1, 2)) == "point(x=1, y=2)"
    assert safe_repr(collections.defaultdict(list, a=[1])).startswith("defaultdict(<class 'list'>")
    assert safe_repr(collections.OrderedDict(a=1)).startswith("OrderedDict(")
