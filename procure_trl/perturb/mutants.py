"""Near-miss mutants at a concept's sites: semantics-*breaking* edits applied alike to an original program and to
its counterfactual, so that the two buggy programs form a pair.

Pure functions: no file, no execution. :func:`mutate_pair` takes the original, the counterfactual and the
counterfactual's ``changed_spans`` (where the concept acted) and returns a :class:`MutantPair` for one
:class:`MutationKind`. Every mutant it returns parses, is a different program from its source, and differs from
its source only inside its ``changed_spans`` (checked with the validator's span check); whether it is a *bug*
is for the tests to say (:mod:`procure_trl.perturb.mutate`).

One operator per concept, at the concept's own site:

* ``negated_condition`` (``if_else_flip``): the flipped ``if`` gets the other program's condition, i.e. its
  condition negated without swapping its branches;
* ``dependent_swap`` (``independent_swap``): two statements of the swapped block that *do* depend on each other
  (one writes a name the other reads or writes) change places;
* ``stale_use`` (``def_use_break``): one use reached by the split definition reads the old name again; in the
  original the same bug needs the counterfactual's fresh name, so both mutants are the same program;
* ``name_collision`` (``name_random``, ``name_shuffle``): one read of a renamed variable reads another variable
  of the same function, defined before it, instead;

and three classic operators on the counterfactual's changed lines, at a token the original has too:

* ``comparison``: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``;
* ``off_by_one``: an integer literal ``n`` -> ``n + 1`` (or ``n - 1``);
* ``boolean``: ``and`` <-> ``or``, ``True`` <-> ``False``.
"""

from __future__ import annotations

import ast
import difflib
import io
import random
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from procure_trl.analysis.spans import Edit, OverlappingEditsError, SourceMap, Span, apply_edits
from procure_trl.concepts import AnyConcept, Concept

__all__ = ["CLASSIC_KINDS", "CONCEPT_KINDS", "Mutant", "MutantPair", "MutationKind", "mutate_pair", "mutation_kinds"]


class MutationKind(str, Enum):
    """One semantics-breaking edit (the ``mutation`` field of a mutant row)."""

    NEGATED_CONDITION = "negated_condition"
    DEPENDENT_SWAP = "dependent_swap"
    STALE_USE = "stale_use"
    NAME_COLLISION = "name_collision"
    COMPARISON = "comparison"
    OFF_BY_ONE = "off_by_one"
    BOOLEAN = "boolean"

    def __str__(self) -> str:
        return self.value


#: The operator that acts at each built-in concept's own site.
CONCEPT_KINDS: dict[Concept, MutationKind] = {
    Concept.IF_ELSE_FLIP: MutationKind.NEGATED_CONDITION,
    Concept.INDEPENDENT_SWAP: MutationKind.DEPENDENT_SWAP,
    Concept.DEF_USE_BREAK: MutationKind.STALE_USE,
    Concept.NAME_RANDOM: MutationKind.NAME_COLLISION,
    Concept.NAME_SHUFFLE: MutationKind.NAME_COLLISION,
}
#: Operators applied on the changed lines of every concept.
CLASSIC_KINDS = (MutationKind.COMPARISON, MutationKind.OFF_BY_ONE, MutationKind.BOOLEAN)


def mutation_kinds(concept: AnyConcept) -> tuple[MutationKind, ...]:
    """The kinds tried on a counterfactual of ``concept``: its own operator (built-in concepts), then the classic
    ones."""
    own = CONCEPT_KINDS.get(concept) if isinstance(concept, Concept) else None
    return ((own,) if own else ()) + CLASSIC_KINDS


@dataclass(frozen=True)
class Mutant:
    """One mutated program: ``code`` differs from its source only inside ``changed_spans`` (offsets into ``code``)."""

    code: str
    changed_spans: tuple[Span, ...]


@dataclass(frozen=True)
class MutantPair:
    """The same mutation in an original and in its counterfactual; both ``None`` with a ``reason`` when it does
    not apply."""

    kind: MutationKind
    original: Mutant | None
    counterfactual: Mutant | None
    reason: str = ""
    detail: str = ""

    @property
    def applied(self) -> bool:
        return self.original is not None and self.counterfactual is not None


class _NotApplicable(Exception):
    """The operator has no site in this pair (the message says why)."""


# -------------------------------------------------------------------------------------------- entry point


def mutate_pair(original: str, counterfactual: str, concept: AnyConcept, changed_spans: Sequence[Sequence[int]],
                kind: MutationKind | str, seed: int = 0) -> MutantPair:
    """Apply ``kind`` alike to ``original`` and ``counterfactual`` (whose concept acted at ``changed_spans``).

    ``seed`` picks among the possible sites. Returns a pair whose mutants parse, differ from their sources as
    programs, and differ from them only inside their spans; or a not-applied pair with the reason.
    """
    kind = MutationKind(kind)
    try:
        o_tree, c_tree = ast.parse(original), ast.parse(counterfactual)
    except (SyntaxError, ValueError) as err:
        return MutantPair(kind, None, None, f"a program does not parse: {err}")
    site = _Site(original, counterfactual, o_tree, c_tree, tuple(tuple(s) for s in changed_spans), random.Random(seed))
    try:
        o_edits, c_edits, detail = _OPERATORS[kind](site)
        mutants = [_apply(source, tree, edits) for source, tree, edits in
                   ((original, o_tree, o_edits), (counterfactual, c_tree, c_edits))]
    except _NotApplicable as err:
        return MutantPair(kind, None, None, str(err))
    return MutantPair(kind, mutants[0], mutants[1], detail=detail)


def _apply(source: str, tree: ast.AST, edits: list[Edit]) -> Mutant:
    """The mutant of ``source``; refuses one that does not parse, is the same program, or strays outside its spans."""
    from procure_trl.validation.pipeline import check_spans

    try:
        code, spans = apply_edits(source, edits)
        mutated = ast.parse(code)
    except (OverlappingEditsError, SyntaxError, ValueError) as err:
        raise _NotApplicable(f"the mutant would not parse ({err})") from None
    if ast.dump(mutated) == ast.dump(tree):
        raise _NotApplicable("the mutant would be the same program")
    problem = check_spans(source, code, [list(s) for s in spans])
    if problem:  # cannot happen with apply_edits; kept as the contract's check
        raise _NotApplicable(f"the mutant's spans are wrong: {problem}")
    return Mutant(code, spans)


@dataclass
class _Site:
    original: str
    counterfactual: str
    o_tree: ast.Module
    c_tree: ast.Module
    spans: tuple[tuple[int, int], ...]
    rng: random.Random

    def changed_lines(self) -> set[int]:
        """1-based lines of the counterfactual that its changed spans touch."""
        lines = set()
        for start, end in self.spans:
            first = self.counterfactual.count("\n", 0, start) + 1
            last = self.counterfactual.count("\n", 0, max(start, end - 1)) + 1
            lines.update(range(first, last + 1))
        return lines

    def pick(self, candidates: list, what: str):
        if not candidates:
            raise _NotApplicable(what)
        return candidates[self.rng.randrange(len(candidates))]


# ---------------------------------------------------------------------------------- concept operators


def _negated_condition(site: _Site):
    """The flipped if (or conditional expression) takes the other program's condition: the original's condition
    negated, branches kept; the counterfactual's condition un-negated, its swapped branches kept."""
    def tests(tree):
        return {(n.lineno, n.col_offset): n.test for n in ast.walk(tree) if isinstance(n, (ast.If, ast.IfExp))}

    o_tests, c_tests = tests(site.o_tree), tests(site.c_tree)
    flipped = sorted(k for k in o_tests if k in c_tests and ast.dump(o_tests[k]) != ast.dump(c_tests[k]))
    key = site.pick(flipped, "no flipped if/else condition found at the same place in both programs")
    o_map, c_map = SourceMap(site.original), SourceMap(site.counterfactual)
    o_span, c_span = o_map.node_span(o_tests[key]), c_map.node_span(c_tests[key])
    o_text, c_text = site.original[slice(*o_span)], site.counterfactual[slice(*c_span)]
    return ([Edit(*o_span, _grouped(c_text))], [Edit(*c_span, _grouped(o_text))],
            f"line {key[0]}: condition {o_text!r} <-> {c_text!r}")


def _grouped(text: str) -> str:
    """``text`` as an expression that may stand where a condition stood (a multi-line one gets parentheses)."""
    return f"({text})" if "\n" in text and not (text.startswith("(") and text.endswith(")")) else text


def _blocks(tree: ast.AST) -> list[list[ast.stmt]]:
    out = []
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            value = getattr(node, name, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                out.append(value)
    return out


def _line_span(source_map: SourceMap, source: str, stmt: ast.stmt) -> Span:
    """The whole lines of ``stmt``, from its first character to the end of its last line (no newline)."""
    start = source_map.offset(stmt.lineno, stmt.col_offset)
    end = source.find("\n", source_map.offset(stmt.end_lineno, stmt.end_col_offset))
    return start, len(source) if end < 0 else end


def _names(stmt: ast.stmt) -> tuple[set[str], set[str]]:
    stores, loads = set(), set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else stores).add(node.id)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            loads.add(node.target.id)
    return stores, loads


def _dependent(a: ast.stmt, b: ast.stmt) -> bool:
    a_store, a_load = _names(a)
    b_store, b_load = _names(b)
    return bool(a_store & (b_load | b_store) or b_store & a_load)


def _own_lines(block: list[ast.stmt], source: str, source_map: SourceMap) -> bool:
    """Each statement of ``block`` sits on lines of its own (no ``;``, nothing after it on its last line)."""
    for stmt, after in zip(block, block[1:]):
        if after.lineno <= stmt.end_lineno:
            return False
    return all(not getattr(s, "decorator_list", None) and
               source[source_map.line_start(s.lineno):source_map.offset(s.lineno, s.col_offset)].strip() == ""
               for s in block)


def _dependent_swap(site: _Site):
    """Two statements of the block the concept swapped that depend on each other change places, in both programs."""
    first_line = site.counterfactual.count("\n", 0, min(s for s, _ in site.spans)) + 1 if site.spans else 0
    o_map, c_map = SourceMap(site.original), SourceMap(site.counterfactual)

    def block_at(tree, source, source_map):
        for block in _blocks(tree):
            if any(s.lineno == first_line for s in block) and _own_lines(block, source, source_map):
                return block
        raise _NotApplicable(f"no block of statements on lines of their own starts a statement at line {first_line}")

    o_block = block_at(site.o_tree, site.original, o_map)
    c_block = block_at(site.c_tree, site.counterfactual, c_map)
    o_texts = [site.original[slice(*_line_span(o_map, site.original, s))] for s in o_block]
    c_texts = [site.counterfactual[slice(*_line_span(c_map, site.counterfactual, s))] for s in c_block]
    if sorted(o_texts) != sorted(c_texts):
        raise _NotApplicable("the swapped block holds other statements in the two programs")
    moved = {i for i, (a, b) in enumerate(zip(o_texts, c_texts)) if a != b}
    pairs = []
    for i in range(len(o_block)):
        for j in range(i + 1, len(o_block)):
            if (not _dependent(o_block[i], o_block[j])
                    or o_texts.count(o_texts[i]) != 1 or o_texts.count(o_texts[j]) != 1):
                continue
            ci, cj = c_texts.index(o_texts[i]), c_texts.index(o_texts[j])
            if ci < cj:  # the same order in the counterfactual: swapping reverses it in both
                pairs.append((i not in moved and j not in moved, j - i, i, j, ci, cj))
    # pairs that move a statement the concept moved come first: they are the concept's own site
    preferred = [p for p in sorted(pairs) if not p[0]] or sorted(pairs)
    i, j, ci, cj = site.pick(preferred, "no two dependent statements in the swapped block")[2:]

    def swap(source, source_map, block, a, b):
        span_a, span_b = _line_span(source_map, source, block[a]), _line_span(source_map, source, block[b])
        return [Edit(*span_a, source[slice(*span_b)]), Edit(*span_b, source[slice(*span_a)])]

    return (swap(site.original, o_map, o_block, i, j), swap(site.counterfactual, c_map, c_block, ci, cj),
            f"swapped lines {o_block[i].lineno} and {o_block[j].lineno} of the original")


def _parallel(site: _Site) -> list[tuple[ast.AST, ast.AST]]:
    """Node pairs of two programs of the same shape (a renaming), or not applicable."""
    o_nodes, c_nodes = list(ast.walk(site.o_tree)), list(ast.walk(site.c_tree))
    if len(o_nodes) != len(c_nodes) or any(type(a) is not type(b) for a, b in zip(o_nodes, c_nodes)):
        raise _NotApplicable("the two programs differ in more than names")
    return list(zip(o_nodes, c_nodes))


def _stale_use(site: _Site):
    """A use reached by the split definition reads the old name; in the original the definition is split the same
    way (every other renamed name takes the counterfactual's name), so both mutants are one program."""
    renamed = [(o, c) for o, c in _parallel(site) if isinstance(o, ast.Name) and o.id != c.id]
    uses = [(o, c) for o, c in renamed if isinstance(o.ctx, ast.Load)]
    o_use, c_use = site.pick(uses, "no renamed use of a split definition")
    o_map, c_map = SourceMap(site.original), SourceMap(site.counterfactual)
    o_edits = [Edit(*o_map.node_span(o), c.id) for o, c in renamed if o is not o_use]
    return (o_edits, [Edit(*c_map.node_span(c_use), o_use.id)],
            f"line {o_use.lineno}: {c_use.id} read as {o_use.id}")


def _functions(tree: ast.AST) -> dict[int, ast.AST]:
    """id(node) -> the innermost function (or the module) holding it."""
    owner: dict[int, ast.AST] = {}

    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            owner[id(child)] = scope
            visit(child, child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else scope)

    visit(tree, tree)
    return owner


def _name_collision(site: _Site):
    """One read of a renamed variable reads another renamed variable of its function, defined before it."""
    pairs = _parallel(site)
    rename: dict[str, str] = {}
    for o, c in pairs:
        o_id, c_id = ((o.id, c.id) if isinstance(o, ast.Name)
                      else (o.arg, c.arg) if isinstance(o, ast.arg) else (None, None))
        if o_id is not None and o_id != c_id:
            if rename.setdefault(o_id, c_id) != c_id:
                raise _NotApplicable(f"{o_id} is renamed to more than one name")
    owner = _functions(site.o_tree)
    defined: dict[tuple[int, str], int] = {}  # (scope, name) -> first line that binds it
    for o, _ in pairs:
        name = (o.arg if isinstance(o, ast.arg)
                else o.id if isinstance(o, ast.Name) and not isinstance(o.ctx, ast.Load) else None)
        if name in rename:
            key = (id(owner.get(id(o))), name)
            defined[key] = min(defined.get(key, o.lineno), o.lineno)
    options = []
    for o, c in pairs:
        if isinstance(o, ast.Name) and isinstance(o.ctx, ast.Load) and o.id in rename:
            scope = id(owner.get(id(o)))
            for (where, other), line in sorted(defined.items(), key=lambda kv: kv[0][1]):
                if where == scope and other != o.id and line < o.lineno and rename[other] != c.id:
                    options.append((o, c, other))
    o_use, c_use, other = site.pick(options, "no read of a renamed variable with another variable defined before it")
    o_map, c_map = SourceMap(site.original), SourceMap(site.counterfactual)
    return ([Edit(*o_map.node_span(o_use), other)], [Edit(*c_map.node_span(c_use), rename[other])],
            f"line {o_use.lineno}: {o_use.id} read as {other}")


# ---------------------------------------------------------------------------------- classic operators

_COMPARISON = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
_BOOLEAN = {"and": "or", "or": "and", "True": "False", "False": "True"}
_SKIP = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT, tokenize.ENDMARKER}
_DECIMAL = re.compile(r"[0-9]+")


def _tokens(source: str) -> list[tuple[str, int, int, int]]:
    """(text, start offset, end offset, line) of each significant token."""
    source_map = SourceMap(source)
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type not in _SKIP:
                # tokenize counts columns in characters; lines the same way ast does for \n sources
                out.append((tok.string, source_map.line_start(tok.start[0]) + tok.start[1],
                            source_map.line_start(tok.end[0]) + tok.end[1], tok.start[0]))
    except (tokenize.TokenError, IndentationError, IndexError) as err:
        raise _NotApplicable(f"cannot tokenize: {err}") from None
    return out


def _classic(replace):
    def operator(site: _Site):
        o_toks, c_toks = _tokens(site.original), _tokens(site.counterfactual)
        lines = site.changed_lines()
        matcher = difflib.SequenceMatcher(None, [t[0] for t in o_toks], [t[0] for t in c_toks], autojunk=False)
        options = []
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                o_tok, c_tok = o_toks[block.a + k], c_toks[block.b + k]
                new = replace(c_tok[0], site.rng)
                if c_tok[3] in lines and new is not None:
                    options.append((o_tok, c_tok, new))
        o_tok, c_tok, new = site.pick(options, f"no {operator.kind} token on the changed lines in both programs")
        return ([Edit(o_tok[1], o_tok[2], new)], [Edit(c_tok[1], c_tok[2], new)],
                f"line {o_tok[3]}: {o_tok[0]!r} -> {new!r}")
    return operator


def _off_by_one(text: str, rng: random.Random) -> str | None:
    if not _DECIMAL.fullmatch(text) or (len(text) > 1 and text.startswith("0")):
        return None
    value = int(text)
    return str(value + 1 if value == 0 else value + rng.choice((1, -1)))


_OPERATORS = {
    MutationKind.NEGATED_CONDITION: _negated_condition,
    MutationKind.DEPENDENT_SWAP: _dependent_swap,
    MutationKind.STALE_USE: _stale_use,
    MutationKind.NAME_COLLISION: _name_collision,
    MutationKind.COMPARISON: _classic(lambda t, rng: _COMPARISON.get(t)),
    MutationKind.OFF_BY_ONE: _classic(_off_by_one),
    MutationKind.BOOLEAN: _classic(lambda t, rng: _BOOLEAN.get(t)),
}
for _kind in CLASSIC_KINDS:
    _OPERATORS[_kind].kind = _kind.value
