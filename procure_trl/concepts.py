"""The programming concepts ProCURE perturbs, as one registry used everywhere.

A concept identifier is the string value of a :class:`Concept` member. These five strings are a
contract: they name the CLI's ``--concepts`` values, the ``concept`` column of every dataset and
output file, and the per-concept rows of every report.

Users add concepts of their own as ast-grep rules (``procure perturb --concept-rules rules.yml``, see
:mod:`procure_trl.perturbations.concept_rules`): each becomes a :class:`UserConcept`, registered here by
:func:`register_concept`, after which :meth:`Concept.parse` knows its name like a built-in one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from procure_trl.errors import UserError


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
    def parse(cls, name: str | AnyConcept, *, unregistered: bool = False) -> AnyConcept:
        """Return the concept called ``name`` (built-in or registered), or raise a ``ValueError`` that lists the
        valid names. With ``unregistered``, a well-formed name that is neither gives a :class:`UserConcept`
        without rules (rows of a user concept read back from a file)."""
        if isinstance(name, (Concept, UserConcept)):
            return name
        text = name.strip()
        if text in cls._value2member_map_:
            return cls(text)
        if text in _USER_CONCEPTS:
            return _USER_CONCEPTS[text]
        if unregistered and _NAME.match(text) and text != ORIGINAL:
            return UserConcept(text)
        from procure_trl.errors import did_you_mean

        valid = [c.value for c in all_concepts()]
        raise UserError(
            f"unknown concept {name!r}{did_you_mean(text, valid)}; valid concepts are: {', '.join(valid)}"
        ) from None

    @classmethod
    def parse_list(cls, names: str | Sequence[str | AnyConcept] | None) -> list[AnyConcept]:
        """Parse a comma-separated string (CLI style) or a list; ``None`` means all five, in order."""
        if names is None:
            return list(cls)
        if isinstance(names, str):
            names = [n for n in names.split(",") if n.strip()]
        return [cls.parse(n) for n in names]


@dataclass(frozen=True)
class UserConcept:
    """A concept defined by the user with ast-grep rules (see :mod:`procure_trl.perturbations.concept_rules`).

    It stands wherever a :class:`Concept` member does: ``value`` is its identifier, ``str()`` gives it.

    Parameters:
        value (`str`):
            Its identifier (the ``concept`` column): lowercase letters, digits and ``_``, starting with a letter.
        rules (`tuple`, *optional*, defaults to `()`):
            The :class:`~procure_trl.perturbations.concept_rules.ConceptRule` objects that perturb it; empty for a
            concept known only by its name (rows read back from a file).
        category (`str`, *optional*, defaults to `"user-defined"`):
            The programming concept it probes, as reports group it.
        description (`str`, *optional*, defaults to `""`):
            One line saying what the perturbation does.
    """

    value: str
    rules: tuple[Any, ...] = ()
    category: str = "user-defined"
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not _NAME.match(self.value) or self.value == ORIGINAL:
            raise UserError(
                f"concept name {self.value!r} is not usable: use lowercase letters, digits and '_', starting with a "
                f"letter, and not {ORIGINAL!r}"
            )
        if self.value in Concept._value2member_map_:
            raise UserError(f"concept name {self.value!r} is a built-in concept; give the rule's concept another name")

    def __str__(self) -> str:
        return self.value

    def __hash__(self) -> int:  # by name: its rules are mappings
        return hash(self.value)


#: a built-in or a user-defined concept
AnyConcept = Concept | UserConcept

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_USER_CONCEPTS: dict[str, UserConcept] = {}


def register_concept(concept: UserConcept) -> UserConcept:
    """Make ``concept`` known by name to :meth:`Concept.parse` (and so to ``--concepts``, records, datasets).

    Registering the same concept again is a no-op; a different concept under a registered name is refused.
    """
    existing = _USER_CONCEPTS.get(concept.value)
    if existing is not None and existing != concept:
        raise UserError(f"a different concept {concept.value!r} is already registered; give this one another name")
    _USER_CONCEPTS[concept.value] = concept
    return concept


def all_concepts() -> list[AnyConcept]:
    """The five built-in concepts, then the registered user concepts in registration order."""
    return [*Concept, *_USER_CONCEPTS.values()]


def concept_names_in(concepts: Iterable[str | AnyConcept]) -> list[str]:
    """The distinct concept names of ``concepts`` (names or concepts, e.g. the ``concept`` of every row), in
    report order: the built-in ones in :class:`Concept` order, then the others (user-defined, registered or
    only named in the rows) in first-seen order. Every per-concept loop over rows iterates this, so rows of a
    user-defined concept are never dropped."""
    names = dict.fromkeys(c.value if isinstance(c, (Concept, UserConcept)) else c for c in concepts)
    return [c.value for c in Concept if c.value in names] + [n for n in names if n not in Concept._value2member_map_]


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
