"""A piece of SQL with its parameters: what every composer passes around instead of text."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql


@dataclass
class Frag:
    """A composable SQL fragment and its positional (``%s``) parameters, in order."""

    sql: sql.Composable
    params: list = field(default_factory=list)

    @staticmethod
    def join(frags: list[Frag], sep: str) -> Frag:
        """``frags`` joined by ``sep`` (e.g. ``" AND "``), parameters concatenated in order."""
        return Frag(sql.SQL(sep).join(f.sql for f in frags),
                    [p for f in frags for p in f.params])


TRUE = Frag(sql.SQL("TRUE"))
