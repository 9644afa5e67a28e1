"""Near-duplicate tasks: which benchmark tasks are so alike that one must not be trained on while the other is tested.

Benchmarks repeat themselves: HumanEval's ``pairs_sum_to_zero`` and ``triples_sum_to_zero`` share almost every
word of their statement, MBPP states many tasks twice, and HumanEval's ``strlen`` is MBPP's ``string_length``. A
split by task id puts such twins on both sides and the test split then measures recall. Two tasks are **linked**
when any of these holds (every test is exact, no sampling):

1. **Statement words**: the Jaccard similarity of the sets of words of three letters or more (lower-cased) of the
   two problem statements, with their examples and asserts removed (:func:`statement_text`), is at least
   ``threshold`` (default :data:`DEFAULT_THRESHOLD`, 0.8).
2. **Content words**: the same over the statements' content words (:func:`content_words`: the statement words
   without the stop words and the benchmarks' boilerplate such as "write a function to find", plurals folded) is at
   least ``threshold``; this links short statements that say the same thing in other words ("Return length of given
   string" and "Write a function to find length of the string.").
3. **Same solution**: the reference programs have equal identifier-abstracted syntax trees (:func:`solution_shape`:
   names bound in the program renumbered in order of appearance, docstrings, type annotations and imports dropped).

Groups are the connected components of these links (single linkage). On HumanEval + MBPP (1,138 tasks) at 0.8 the
largest group has 6 tasks, 125 groups have more than one task and they hold 294 tasks; statement words alone at 0.7
would give a largest group of 13 and at 0.6 of 140, which is why the threshold stays at 0.8 (docs/datasets.md).

Everything here is pure: task texts in, pairs and groups out.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_THRESHOLD",
    "ComparableTask",
    "statement_text",
    "statement_words",
    "content_words",
    "solution_shape",
    "jaccard",
    "similar_pairs",
    "near_duplicate_groups",
    "near_duplicates_of",
    "largest_cross_similarity",
    "group_sizes",
]

#: Jaccard similarity at or above which two statements are near duplicates (both word measures).
DEFAULT_THRESHOLD = 0.8

#: A line that starts the examples or the tests of a statement: everything from it on is dropped.
_EXAMPLES_START = re.compile(
    r"^\s*(>>>|for exam\w*|examples?\b|e\.g\.|your code should pass|assert\b)", re.IGNORECASE
)
#: A line that shows one call and its result (``f(3) == 5``, ``f("a") -> 1``): dropped.
_EXAMPLE_CALL = re.compile(r"^\s*[A-Za-z_]\w*\s*\(.*\)\s*(==|=>|->|\u279e|=|is\b)")
_WORD = re.compile(r"[A-Za-z]{3,}")
#: Words that say nothing about what a task computes: English function words of three letters or more and the
#: benchmarks' phrasing ("Write a python function to find ...", "Return ... given ...").
STOP_WORDS = frozenset(
    """
    the and for that with are from this which given return returns write function python find program into its all
    any each has have was were will can should not but whether you your them then than there their these those such
    also only using use used where when what how who our out get gets
    """.split()
)


@dataclass(frozen=True)
class ComparableTask:
    """What two tasks are compared on: the natural-language statement and the reference program."""

    statement: str
    program: str = ""


def statement_text(statement: str) -> str:
    """The statement without its examples and asserts: every line from the first example or test marker on
    (``>>>``, "For example", "Examples", "Your code should pass these tests", ``assert``) and every line that shows
    a call and its result (``f(3) == 5``) are dropped."""
    kept = []
    for line in statement.splitlines():
        if _EXAMPLES_START.match(line):
            break
        if not _EXAMPLE_CALL.match(line):
            kept.append(line)
    return "\n".join(kept)


def statement_words(statement: str) -> frozenset[str]:
    """The lower-cased words of three letters or more of :func:`statement_text`."""
    return frozenset(word.lower() for word in _WORD.findall(statement_text(statement)))


def content_words(words: Iterable[str]) -> frozenset[str]:
    """``words`` without :data:`STOP_WORDS`, a plural ``s`` folded (``lists`` -> ``list``, not ``class``)."""
    out = set()
    for word in words:
        if word in STOP_WORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.add(word)
    return frozenset(out)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """``|a & b| / |a | b|``; 0 when either set is empty (an empty statement resembles nothing)."""
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


# --------------------------------------------------------------------------------------------------
# solutions
# --------------------------------------------------------------------------------------------------


def _bound_names(tree: ast.AST) -> list[str]:
    """Names the program binds (functions, classes, parameters, assigned variables), in ``ast.walk`` order."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.arg):
            names.append(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.append(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.append(node.name)
    return names


class _Abstract(ast.NodeTransformer):
    """Renames bound names to ``v0``, ``v1``, ...; drops docstrings, annotations and imports. Free names
    (builtins, modules) and attributes are kept: ``len(x)`` and ``sorted(x)`` stay different."""

    def __init__(self, names: Mapping[str, str]):
        self.names = names

    @staticmethod
    def _drop_docstring(node) -> None:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]

    def visit_FunctionDef(self, node):
        self._drop_docstring(node)
        node.name = self.names.get(node.name, node.name)
        node.returns = None
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._drop_docstring(node)
        node.name = self.names.get(node.name, node.name)
        self.generic_visit(node)
        return node

    def visit_arg(self, node):
        node.arg = self.names.get(node.arg, node.arg)
        node.annotation = None
        return node

    def visit_Name(self, node):
        node.id = self.names.get(node.id, node.id)
        return node

    def visit_ExceptHandler(self, node):
        if node.name:
            node.name = self.names.get(node.name, node.name)
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node):
        self.generic_visit(node)
        if node.value is None:  # a bare annotation binds nothing
            return None
        return ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)

    def visit_Import(self, node):
        return None

    visit_ImportFrom = visit_Import


def solution_shape(program: str) -> str | None:
    """The identifier-abstracted syntax tree of ``program`` (``ast.dump``); ``None`` when it does not parse or is
    empty. Two programs with equal shapes are the same program up to the names they choose."""
    if not program.strip():
        return None
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return None
    names: dict[str, str] = {}
    for name in _bound_names(tree):
        names.setdefault(name, f"v{len(names)}")
    tree = _Abstract(names).visit(tree)
    tree.body = tree.body or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


# --------------------------------------------------------------------------------------------------
# pairs and groups
# --------------------------------------------------------------------------------------------------


def _overlaps(sets: Mapping[str, frozenset[str]], others: Mapping[str, frozenset[str]] | None = None):
    """``(a, b, shared words)`` for every pair sharing a word: within ``sets`` (each pair once) or between ``sets``
    and ``others``. An inverted index, so only pairs with something in common are looked at."""
    index: dict[str, list[str]] = defaultdict(list)
    for key, words in (others if others is not None else sets).items():
        for word in words:
            index[word].append(key)
    order = {key: i for i, key in enumerate(sets)} if others is None else None
    for key, words in sets.items():
        counts: dict[str, int] = defaultdict(int)
        for word in words:
            for other in index[word]:
                counts[other] += 1
        for other, shared in counts.items():
            if order is not None and order.get(other, -1) <= order[key]:
                continue  # within one set: each unordered pair once, never a task with itself
            yield key, other, shared


def similar_pairs(
    sets: Mapping[str, frozenset[str]], threshold: float, others: Mapping[str, frozenset[str]] | None = None
) -> list[tuple[str, str, float]]:
    """Every pair with Jaccard similarity ``>= threshold`` (exact), within ``sets`` or between ``sets`` and
    ``others``, as ``(a, b, similarity)``."""
    other_sets = others if others is not None else sets
    out = []
    for a, b, shared in _overlaps(sets, others):
        similarity = shared / (len(sets[a]) + len(other_sets[b]) - shared)
        if similarity >= threshold:
            out.append((a, b, similarity))
    return out


def _links(
    tasks: Mapping[str, ComparableTask], threshold: float, others: Mapping[str, ComparableTask] | None = None
) -> list[tuple[str, str, str]]:
    """``(a, b, why)`` for every linked pair (see the module docstring), within ``tasks`` or from ``tasks`` to
    ``others``; a pair linked several ways is listed once, with the first reason."""
    words = {t: statement_words(x.statement) for t, x in tasks.items()}
    other_words = {t: statement_words(x.statement) for t, x in others.items()} if others is not None else None
    found: dict[tuple[str, str], str] = {}
    for a, b, similarity in similar_pairs(words, threshold, other_words):
        found.setdefault((a, b), f"{similarity:.0%} of their statement words shared")
    content = {t: content_words(w) for t, w in words.items()}
    other_content = {t: content_words(w) for t, w in other_words.items()} if other_words is not None else None
    for a, b, similarity in similar_pairs(content, threshold, other_content):
        found.setdefault((a, b), f"{similarity:.0%} of their statement content words shared")
    shapes = _shape_index(tasks)
    for shape, members in (_shape_index(others) if others is not None else shapes).items():
        sources = shapes.get(shape, [])
        for i, a in enumerate(sources):
            for b in members if others is not None else sources[i + 1:]:
                found.setdefault((a, b), "the same solution up to names")
    return [(a, b, why) for (a, b), why in found.items()]


def _shape_index(tasks: Mapping[str, ComparableTask]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = defaultdict(list)
    for task, text in tasks.items():
        shape = solution_shape(text.program)
        if shape is not None:
            index[shape].append(task)
    return index


def near_duplicate_groups(tasks: Mapping[str, ComparableTask], threshold: float = DEFAULT_THRESHOLD) -> list[list[str]]:
    """The tasks in groups of near duplicates (single linkage over the links of the module docstring): every task
    is in exactly one group; groups keep the order of ``tasks`` inside and come in the order of their first task."""
    if not 0 < threshold <= 1:
        raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    parent = {task: task for task in tasks}
    position = {task: i for i, task in enumerate(tasks)}

    def root(task: str) -> str:
        while parent[task] != task:
            parent[task] = parent[parent[task]]
            task = parent[task]
        return task

    for a, b, _ in _links(tasks, threshold):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb, key=position.__getitem__)] = min(ra, rb, key=position.__getitem__)
    groups: dict[str, list[str]] = {}
    for task in tasks:
        groups.setdefault(root(task), []).append(task)
    return list(groups.values())


def near_duplicates_of(
    queries: Mapping[str, ComparableTask], corpus: Mapping[str, ComparableTask], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, list[tuple[str, str]]]:
    """For each query task linked to some corpus task: ``[(corpus task, why), ...]``. A task never counts as a
    near duplicate of itself (the same id on both sides is the caller's business)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for query, other, why in _links(queries, threshold, corpus):
        if query != other:
            out.setdefault(query, []).append((other, why))
    return out


def largest_cross_similarity(
    first: Mapping[str, frozenset[str]], second: Mapping[str, frozenset[str]]
) -> tuple[float, str | None, str | None]:
    """The largest Jaccard similarity between a set of ``first`` and one of ``second`` and the two keys;
    ``(0.0, None, None)`` when no pair shares a word."""
    best: tuple[float, str | None, str | None] = (0.0, None, None)
    for a, b, shared in _overlaps(first, second):
        similarity = shared / (len(first[a]) + len(second[b]) - shared)
        if similarity > best[0]:
            best = (similarity, a, b)
    return best


def group_sizes(groups: Sequence[Sequence[str]]) -> tuple[int, int, int]:
    """``(largest group, groups of two tasks or more, tasks in those groups)``."""
    multi = [g for g in groups if len(g) > 1]
    return max((len(g) for g in groups), default=0), len(multi), sum(len(g) for g in multi)
