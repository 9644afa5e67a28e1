"""The programming concepts ProCURE perturbs, as one registry used everywhere.

A concept identifier is the string value of a :class:`Concept` member. These five strings are a
contract: they name the CLI's ``--concepts`` values, the ``concept`` column of every dataset and
output file, and the per-concept rows of every report.
"""

from __future__ import annotations

from enum import Enum


class Concept(str, Enum):
    """One semantics-preserving perturbation family, aimed at one programming concept."""

    IF_ELSE_FLIP = "if_else_flip"
    INDEPENDENT_SWAP = "independent_swap"
    DEF_USE_BREAK = "def_use_break"
    NAME_RANDOM = "name_random"
    NAME_SHUFFLE = "name_shuffle"

    def __str__(self) -> str:  # so f-strings and JSON show the identifier, not "Concept.X"
        return self.value

    @property
    def category(self) -> str:
        """The programming concept the perturbation probes (the paper's grouping)."""
        return _CATEGORIES[self]

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @classmethod
    def parse(cls, name: "str | Concept") -> "Concept":
        """Return the concept called ``name``, or raise a ``ValueError`` that lists the valid names."""
        if isinstance(name, Concept):
            return name
        try:
            return cls(name.strip())
        except ValueError:
            from procure_trl.errors import did_you_mean

            valid = [c.value for c in cls]
            raise ValueError(
                f"unknown concept {name!r}{did_you_mean(name.strip(), valid)}; valid concepts are: {', '.join(valid)}"
            ) from None

    @classmethod
    def parse_list(cls, names: "str | list[str] | None") -> list["Concept"]:
        """Parse a comma-separated string (CLI style) or a list; ``None`` means all five, in order."""
        if names is None:
            return list(cls)
        if isinstance(names, str):
            names = [n for n in names.split(",") if n.strip()]
        return [cls.parse(n) for n in names]


#: The ``concept`` value that marks an unperturbed program in datasets and reports.
ORIGINAL = "original"

_CATEGORIES = {
    Concept.IF_ELSE_FLIP: "control flow",
    Concept.INDEPENDENT_SWAP: "statement order",
    Concept.DEF_USE_BREAK: "data flow",
    Concept.NAME_RANDOM: "identifier naming",
    Concept.NAME_SHUFFLE: "identifier naming",
}

_DESCRIPTIONS = {
    Concept.IF_ELSE_FLIP: "negate the condition of an if/else and swap its branches",
    Concept.INDEPENDENT_SWAP: "swap two statements of one block that do not depend on each other",
    Concept.DEF_USE_BREAK: "give a redefinition of a variable, and every use it reaches, a fresh name",
    Concept.NAME_RANDOM: "rename user-defined variables to fresh random identifiers",
    Concept.NAME_SHUFFLE: "permute the names of user-defined variables among themselves",
}
