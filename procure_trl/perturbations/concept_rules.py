"""User-defined concepts: ast-grep rules that rewrite a program, loaded from a YAML file.

A rules file holds one or more YAML documents (separated by ``---``), each an ast-grep rule in ast-grep's
own format plus the name of the concept it perturbs::

    id: not-eq
    concept: negated_equality          # the concept this rule perturbs (the dataset's `concept` value)
    description: write `not (a == b)` as `a != b`
    language: python                   # optional; Python is the only language
    rule:
      pattern: not ($A == $B)
    constraints: {}                    # optional, as in ast-grep (also `utils` and `transform`)
    fix: $A != $B

Every match of ``rule`` (with its ``constraints``) is a *site*; the perturbation rewrites ``sites`` of
them (one by default; which ones is chosen by the seed) with ``fix``, in which ``$NAME`` stands for the
text a metavariable matched, ``$$$NAME`` for the text of a multiple match and a ``transform`` name for
its transformed text. The changed spans are exactly the rewritten sites. Several rules may name the same
concept: their sites are pooled. Candidates are validated like the built-in concepts' (parse, no-op,
duplicate, :func:`procure_trl.validation.rule_checks.check_rule_rewrite` -- only sites of the concept's
rules changed, each into its fix -- and the problem's tests, which reject a rewrite that is not sound on
that program).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procure_trl.concepts import UserConcept, register_concept
from procure_trl.errors import UserError, first_line
from procure_trl.perturbations.base import PerturbationResult, parse_program, pick_sites

__all__ = ["ConceptRule", "ConceptRulesError", "RuleSite", "apply_concept_rules", "apply_sites", "load_concept_rules",
           "rule_sites"]

#: keys of a rule document: ast-grep's own, plus ``concept`` (required), ``category`` and ``description``
RULE_KEYS = ("id", "concept", "category", "description", "language", "rule", "constraints", "utils",
             "transform", "fix", "message", "note", "severity")
_CONFIG_KEYS = ("rule", "constraints", "utils", "transform")
_METAVAR = re.compile(r"\$\$\$([A-Z_][A-Z0-9_]*)|\$([A-Z_][A-Z0-9_]*)")


@dataclass(frozen=True)
class ConceptRule:
    """One ast-grep rule of a user-defined concept.

    Parameters:
        id (`str`):
            The rule's identifier (from the file, or ``<file>#<n>``); named in reasons and row details.
        concept (`str`):
            The concept the rule perturbs.
        config (`Mapping[str, Any]`):
            ast-grep's rule config: ``rule`` and, when given, ``constraints``, ``utils``, ``transform``.
        fix (`str`):
            The rewrite of a match, with metavariables.
        category (`str`, *optional*, defaults to `"user-defined"`):
            The programming concept it probes.
        description (`str`, *optional*, defaults to `""`):
            What the rewrite does (the rule's ``description`` or ``message``).
    """

    id: str
    concept: str
    config: Mapping[str, Any] = field(hash=False)
    fix: str = ""
    category: str = "user-defined"
    description: str = ""


@dataclass(frozen=True)
class RuleSite:
    """One place a rule rewrites: ``[start, end)`` of the original program becomes ``replacement``."""

    start: int
    end: int
    replacement: str
    rule: str
    line: int


class ConceptRulesError(UserError):
    """A rules file that cannot be used; the message names the file, the rule and the fix."""


def _fail(where: str, message: str) -> ConceptRulesError:
    return ConceptRulesError(f"{where}: {message}")


def _rule_from_document(doc: Any, where: str, default_id: str) -> ConceptRule:
    from procure_trl.errors import did_you_mean

    if not isinstance(doc, Mapping):
        raise _fail(where, f"expected a mapping with concept, rule and fix, got {type(doc).__name__}")
    unknown = [k for k in doc if k not in RULE_KEYS]
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r}{did_you_mean(str(unknown[0]), RULE_KEYS)}; "
                           f"known keys: {', '.join(RULE_KEYS)}")
    missing = [k for k in ("concept", "rule", "fix") if k not in doc]
    if missing:
        raise _fail(where, f"missing {', '.join(missing)}; a rule needs concept (the name it perturbs), rule and fix")
    language = str(doc.get("language", "python")).lower()
    if language not in ("python", "py"):
        raise _fail(where, f"language {doc['language']!r} is not supported; concept rules rewrite Python")
    if not isinstance(doc["rule"], Mapping):
        raise _fail(where, "rule must be an ast-grep rule mapping, e.g. {pattern: 'not ($A == $B)'}")
    if not isinstance(doc["fix"], str):
        raise _fail(where, "fix must be a string (the rewrite, with $METAVARIABLES)")
    try:
        UserConcept(str(doc["concept"]))
    except ValueError as err:
        raise _fail(where, str(err)) from None
    config = {k: doc[k] for k in _CONFIG_KEYS if k in doc}
    pattern = doc["rule"].get("pattern")
    if isinstance(pattern, str):
        known = {m[0] or m[1] for m in _METAVAR.findall(pattern)} | set(doc.get("transform") or {})
        undefined = sorted({m[0] or m[1] for m in _METAVAR.findall(doc["fix"])} - known)
        if undefined:
            raise _fail(where, f"fix uses ${undefined[0]}, which the pattern does not bind; "
                               f"bound: {', '.join('$' + k for k in sorted(known)) or 'none'}")
    try:
        _find(config, "x = 1\n")  # ast-grep checks the rule itself
    except Exception as err:  # ast-grep raises RuntimeError/ValueError/TypeError for a malformed rule
        raise _fail(where, f"ast-grep refused the rule: {first_line(err)}") from err
    return ConceptRule(
        id=str(doc.get("id") or default_id), concept=str(doc["concept"]), config=config, fix=doc["fix"],
        category=str(doc.get("category") or "user-defined"),
        description=str(doc.get("description") or doc.get("message") or ""),
    )


def load_concept_rules(path: str | Path, *, register: bool = True) -> list[UserConcept]:
    """Read a rules file: one :class:`UserConcept` per concept named, with its rules (file order).

    Parameters:
        path (`str` or `Path`):
            A YAML file of ast-grep rules, each naming its ``concept``.
        register (`bool`, *optional*, defaults to `True`):
            Register the concepts (:func:`procure_trl.concepts.register_concept`) so their names parse.

    Raises:
        ConceptRulesError: the file is missing, not YAML, or a rule is malformed (the message names it).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConceptRulesError(f"concept rules file {str(path)!r} not found; give a YAML file of ast-grep rules")
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as err:
        raise ConceptRulesError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not docs:
        raise ConceptRulesError(f"{path}: no rule in the file")
    rules = []
    for number, doc in enumerate(docs, start=1):
        rule_id = doc.get("id") if isinstance(doc, Mapping) else None
        where = f"{path} rule #{number}" + (f" ({rule_id})" if rule_id else "")
        rules.append(_rule_from_document(doc, where, default_id=f"{path.name}#{number}"))
    ids = [r.id for r in rules]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConceptRulesError(f"{path}: rule id {repeated[0]!r} is used twice; give every rule its own id")
    concepts = []
    for name in dict.fromkeys(r.concept for r in rules):
        own = tuple(r for r in rules if r.concept == name)
        concept = UserConcept(name, rules=own, category=next((r.category for r in own if r.category), "user-defined"),
                              description=next((r.description for r in own if r.description), ""))
        concepts.append(register_concept(concept) if register else concept)
    return concepts


def _find(config: Mapping[str, Any], source: str) -> list:
    from ast_grep_py import SgRoot

    # a rule read from YAML: ast-grep's Config TypedDict cannot describe it statically (the rule checks validate it)
    return SgRoot(source, "python").root().find_all(dict(config))  # type: ignore[call-overload]


def _render_fix(rule: ConceptRule, match) -> str:
    """``rule.fix`` with each metavariable replaced by the text it matched in ``match``."""

    def text(found: re.Match) -> str:
        multiple, single = found.group(1), found.group(2)
        if multiple:
            nodes = [n for n in match.get_multiple_matches(multiple) if n.is_named() or n.text() != ","]
            if not nodes:
                return ""
            root_text = match.get_root().root().text()
            return root_text[nodes[0].range().start.index:nodes[-1].range().end.index]
        node = match.get_match(single)
        if node is not None:
            return node.text()
        transformed = match.get_transformed(single)
        if transformed is not None:
            return transformed
        raise ValueError(f"rule {rule.id}: fix uses ${single}, which this match does not bind")

    fix = _METAVAR.sub(text, rule.fix)
    if "\n" in fix:  # later lines of a multi-line fix start at the match's indentation
        start = match.range().start
        line = match.get_root().root().text().splitlines()[start.line]
        indent = line[: len(line) - len(line.lstrip())]
        fix = fix.rstrip("\n").replace("\n", "\n" + indent)
    return fix


def rule_sites(source: str, concept: UserConcept) -> list[RuleSite]:
    """Every site of ``concept``'s rules in ``source``, sorted by position; matches whose fix writes back
    the same text are left out (they would change nothing)."""
    sites: dict[tuple[int, int, str], RuleSite] = {}
    for rule in concept.rules:
        for match in _find(rule.config, source):
            span = match.range()
            replacement = _render_fix(rule, match)
            if replacement == source[span.start.index:span.end.index]:
                continue
            key = (span.start.index, span.end.index, replacement)
            sites.setdefault(key, RuleSite(span.start.index, span.end.index, replacement, rule.id, span.start.line + 1))
    return sorted(sites.values(), key=lambda s: (s.start, s.end, s.replacement))


def _overlap(a: RuleSite, b: RuleSite) -> bool:
    return a.start < b.end and b.start < a.end


def apply_sites(source: str, chosen: list[RuleSite]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """``source`` with the (disjoint) ``chosen`` sites rewritten, and the spans of the rewrites in the result."""
    pieces, spans, position, shift = [], [], 0, 0
    for site in sorted(chosen, key=lambda s: s.start):
        pieces += [source[position:site.start], site.replacement]
        start = site.start + shift
        spans.append((start, start + len(site.replacement)))
        shift += len(site.replacement) - (site.end - site.start)
        position = site.end
    pieces.append(source[position:])
    return "".join(pieces), tuple(spans)


def apply_concept_rules(source: str, concept: UserConcept, seed: int = 0, *, sites: int = 1) -> PerturbationResult:
    """Rewrite ``sites`` disjoint sites of ``concept``'s rules in ``source``, chosen by ``seed``.

    Parameters:
        source (`str`):
            The full program.
        concept (`UserConcept`):
            The concept, with its rules.
        seed (`int`, *optional*, defaults to `0`):
            Chooses the sites; same inputs, same result.
        sites (`int`, *optional*, defaults to `1`):
            How many sites to rewrite; not applicable when the program has fewer disjoint ones.

    Raises:
        InvalidProgramError: ``source`` does not parse.
    """
    parse_program(source)
    if not concept.rules:
        return PerturbationResult.not_applicable(
            concept, f"no ast-grep rule is known for concept {concept.value!r}; load its rules (--concept-rules)")
    found = rule_sites(source, concept)
    rule_ids = ", ".join(r.id for r in concept.rules)
    if not found:
        return PerturbationResult.not_applicable(concept, f"no match of rule(s) {rule_ids}")
    order = list(range(len(found)))
    random.Random(seed).shuffle(order)
    picked = pick_sites(order, sites, usable=lambda i: True,
                        compatible=lambda i, j: not _overlap(found[i], found[j]))
    if len(picked) < sites:
        return PerturbationResult.not_applicable(
            concept, f"{len(picked)} disjoint match(es) of rule(s) {rule_ids}, fewer than sites={sites}")
    chosen = sorted((found[i] for i in picked), key=lambda s: s.start)
    code, spans = apply_sites(source, chosen)
    rewrites = [{"rule": s.rule, "line": s.line, "before": source[s.start:s.end], "after": s.replacement}
                for s in chosen]
    return PerturbationResult(concept=concept, code=code, changed_spans=spans,
                              details={"sites": len(chosen), "rewrites": rewrites})
