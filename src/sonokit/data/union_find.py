"""Disjoint sets (union-find) over hashable ids: groups images that must stay together (duplicates, patients)."""
from __future__ import annotations

from collections.abc import Hashable, Iterable


class UnionFind:
    """Union-find with path halving; the smallest id of a set is its root, so results do not depend on the
    order of the unions.

    ``UnionFind(ids)`` starts with every id alone; ``union(a, b)`` merges their sets, ``find(x)`` is the root
    of ``x``'s set and ``groups()`` lists the sets with more than one member. ``parent`` maps every id to
    its parent (``x in uf.parent`` tells whether ``x`` is one of the ids).
    """

    def __init__(self, items: Iterable[Hashable]):
        self.parent = {i: i for i in items}

    def find(self, x):
        """The root (smallest id) of ``x``'s set."""
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b) -> None:
        """Merge the sets of ``a`` and ``b``."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list]:
        """The sets with at least two members, each sorted; sets in the order their first id was given."""
        out: dict = {}
        for x in self.parent:
            out.setdefault(self.find(x), []).append(x)
        return [sorted(g) for g in out.values() if len(g) > 1]
