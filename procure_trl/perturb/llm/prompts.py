"""Concept-guided one-shot chain-of-thought prompts for LLM counterfactual generation.

The conversation sent for one (program, concept) pair is::

    system     the task, the concept's rules, the answer format
    user       a worked example: a small program and its static-analysis facts
    assistant  the example's step-by-step reasoning and the perturbed program in a fenced block
    user       the program to perturb and ITS static-analysis facts (from the rule-based engine)

A repair round appends the model's rejected answer and a user message with the validator's reason
(:func:`build_repair_message`). :func:`extract_code` reads the answer back.

Everything here is a pure function of its inputs, so the messages (and hence the cache keys) of a
rerun are identical byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from procure_trl.concepts import AnyConcept, Concept
from procure_trl.errors import UserError

#: A reply starting with this marker says the concept cannot be applied (no code block expected).
NOT_APPLICABLE_MARKER = "NOT_APPLICABLE:"

_ANSWER_FORMAT = f"""Answer format:
1. Think step by step: list the candidate sites from the facts, pick one (or, for renamings, the set of
   names), and check the rules for it.
2. End with exactly one fenced code block, ```python ... ```, holding the COMPLETE transformed program:
   every line of the original, including imports, the signature and the docstring.
If no site satisfies the rules, reply with one line `{NOT_APPLICABLE_MARKER} <why>` and no code block."""

_COMMON_RULES = """General rules:
- The program must behave exactly as before on every input: same results, same exceptions, same output.
- Apply ONLY the requested transformation. Do not reformat, reorder, simplify, add or remove comments,
  or fix bugs anywhere else: every other character stays as it is.
- Never rename the function under test, builtins, imported names, attributes, or keyword arguments."""

_RULES: dict[Concept, str] = {
    Concept.IF_ELSE_FLIP: """Concept: if_else_flip (control flow).
Pick one site from the facts: an `if` (or `elif`) statement that has an `else` branch, or a conditional
expression `A if C else B`. Replace its condition C by `not (C)` and swap the two branches: the old
else-body becomes the if-body and vice versa (`B if not (C) else A` for an expression). Write the negation
literally as `not (C)`: rewriting `a < b` as `a >= b` is wrong for NaN and for types with custom
comparisons. Keep the branches' own lines unchanged.""",
    Concept.INDEPENDENT_SWAP: """Concept: independent_swap (statement order).
Pick two adjacent statements of the same block that are independent (the facts list such pairs): neither
writes a variable (or mutates an object) that the other reads or writes, neither performs I/O or another
visible side effect, at most one of them can raise an exception, and neither returns, breaks, continues,
raises or yields. Swap the two statements (whole statements, each keeping the block's indentation);
change nothing else.""",
    Concept.DEF_USE_BREAK: """Concept: def_use_break (data flow).
Pick a variable that is assigned more than once. Give ONE redefinition of it (an assignment after the
first definition) a fresh name that appears nowhere in the program, and rename every use that this
redefinition reaches (up to the next redefinition) to the same fresh name. Uses reached by another
definition, or by this one on some paths only (for example across a loop back-edge), must not be split:
pick another redefinition if that happens.""",
    Concept.NAME_RANDOM: """Concept: name_random (identifier naming).
Rename the user-defined local variables listed as renameable in the facts to fresh, meaningless but valid
identifiers (for example `v_q3`, `tmp_k8`) that appear nowhere in the program. Rename every occurrence of
each chosen name consistently, inside its scope only. Keep the function's parameters' names if the facts
do not list them as renameable.""",
    Concept.NAME_SHUFFLE: """Concept: name_shuffle (identifier naming).
Permute the names of two or more user-defined local variables listed as renameable among themselves (for
example `total` -> `count`, `count` -> `total`), so that no chosen variable keeps its own name. Rename every
occurrence consistently within the scope; make sure no renamed variable captures another binding.""",
}


@dataclass(frozen=True)
class WorkedExample:
    """The one shot: a program, the reasoning a careful engineer writes, and the transformed program."""

    program: str
    reasoning: str
    answer: str


_EXAMPLES: dict[Concept, WorkedExample] = {
    Concept.IF_ELSE_FLIP: WorkedExample(
        program='''def sign_label(x):
    """Describe the sign of x."""
    if x >= 0:
        label = "non-negative"
    else:
        label = "negative"
    return label
''',
        reasoning="""The facts list one if statement with an else branch, condition `x >= 0`. It is not an elif
chain, so it qualifies. The new condition is `not (x >= 0)`. The old else-body `label = "negative"` becomes
the if-body and the old if-body `label = "non-negative"` becomes the else-body. Nothing else changes.""",
        answer='''def sign_label(x):
    """Describe the sign of x."""
    if not (x >= 0):
        label = "negative"
    else:
        label = "non-negative"
    return label
''',
    ),
    Concept.INDEPENDENT_SWAP: WorkedExample(
        program='''def greeting(name):
    """A greeting for name, at most 40 characters long."""
    prefix = "Hello, "
    limit = 40
    text = prefix + name
    return text[:limit]
''',
        reasoning="""The facts list two independent pairs: lines 3-4 and lines 4-5. Take lines 3 and 4:
`prefix = "Hello, "` writes `prefix`, `limit = 40` writes `limit`; both bind a literal, so neither reads
anything, neither can raise, and neither has a side effect. They are adjacent in the same block, and
`text = prefix + name` still comes after `prefix`. Swap exactly these two lines.""",
        answer='''def greeting(name):
    """A greeting for name, at most 40 characters long."""
    limit = 40
    prefix = "Hello, "
    text = prefix + name
    return text[:limit]
''',
    ),
    Concept.DEF_USE_BREAK: WorkedExample(
        program='''def scaled_sum(values, factor):
    """Sum the values, then scale the sum."""
    total = sum(values)
    total = total * factor
    return total
''',
        reasoning="""`total` is defined twice. The redefinition `total = total * factor` reaches only the use in
`return total`. Its right-hand side `total` is reached by the FIRST definition, so it keeps its name. A
fresh name not used anywhere is `scaled_total`. Rename the redefinition's target and the use it reaches.""",
        answer='''def scaled_sum(values, factor):
    """Sum the values, then scale the sum."""
    total = sum(values)
    scaled_total = total * factor
    return scaled_total
''',
    ),
    Concept.NAME_RANDOM: WorkedExample(
        program='''def count_vowels(text):
    """Number of vowels in text."""
    count = 0
    for ch in text:
        if ch in "aeiou":
            count += 1
    return count
''',
        reasoning="""The renameable locals are `count` and `ch`; `count_vowels` is the function under test and
stays. Fresh names that appear nowhere: `count` -> `v_x7`, `ch` -> `q_m2`. Every occurrence is renamed:
`count` four times, `ch` twice. Strings such as "aeiou" are not names and stay.""",
        answer='''def count_vowels(text):
    """Number of vowels in text."""
    v_x7 = 0
    for q_m2 in text:
        if q_m2 in "aeiou":
            v_x7 += 1
    return v_x7
''',
    ),
    Concept.NAME_SHUFFLE: WorkedExample(
        program='''def min_max(items):
    """Smallest and largest item."""
    low = min(items)
    high = max(items)
    return low, high
''',
        reasoning="""The renameable locals are `low` and `high`. Swapping their names is a permutation in which
neither keeps its own name: `low` -> `high`, `high` -> `low`. Each is renamed at its definition and at its
use in the return statement; the returned tuple keeps its order of values.""",
        answer='''def min_max(items):
    """Smallest and largest item."""
    high = min(items)
    low = max(items)
    return high, low
''',
    ),
}

#: ``facts_fn(program, concept, protected_names) -> dict | None``: static-analysis facts for one concept.
FactsFn = Callable[[str, Concept, Sequence[str]], "Mapping[str, Any] | None"]


def default_facts(program: str, concept: Concept, protected_names: Sequence[str] = ()) -> Mapping[str, Any] | None:
    """Facts from the rule-based engine's static analysis (:func:`procure_trl.analysis.analyze`).

    ``protected_names`` (names the tests use) are excluded from the renameable names, as in the rule
    engine. Returns ``None`` when the program does not parse: the prompt then says so instead of
    inventing facts (and the validator will reject the problem with its own reason).
    """
    from procure_trl.analysis import analyze  # imported lazily: the analysis package is large

    try:
        facts = analyze(program, protected_names=frozenset(protected_names))
    except (SyntaxError, ValueError):  # InvalidProgramError is a ValueError
        return None
    return facts.for_concept(concept)


def has_candidate_site(facts: Mapping[str, Any] | None, concept: AnyConcept | str) -> bool | None:
    """Whether the facts list a site where ``concept`` applies; ``None`` when they cannot tell.

    ``False`` lets the generator mark the pair ``not_applicable`` without paying for a request: the
    validator's concept check accepts no candidate the analysis finds no site for. Facts of an unknown
    shape give ``None`` (ask the model) rather than a silent skip.
    """
    if facts is None:
        return None
    concept = Concept.parse(concept)
    try:
        if concept is Concept.IF_ELSE_FLIP:
            return bool(facts["if_else"])
        if concept is Concept.INDEPENDENT_SWAP:
            return bool(facts["independent_pairs"])
        if concept is Concept.DEF_USE_BREAK:
            return any(d["separable"] for flow in facts["redefinitions"] for d in flow["definitions"])
        names = facts["renameable_names"]
        if concept is Concept.NAME_SHUFFLE:  # a permutation needs two names of one scope
            return any(len(v) >= 2 for v in names.values())
        return any(names.values())
    except (KeyError, TypeError, AttributeError):
        return None


def render_facts(facts: Mapping[str, Any] | None) -> str:
    """The facts as stable JSON: one top-level key a line, each value compact (sorted keys throughout).

    Fully indented JSON would spend a line per list item and several tokens per brace; one compact
    line per key keeps the prompt short and still readable. The same facts always give the same text.
    """
    if facts is None:
        return "(no static-analysis facts: the program could not be analysed)"

    def compact(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str, separators=(", ", ": "))

    items = [f"  {compact(str(k))}: {compact(facts[k])}" for k in sorted(facts)]
    return "{\n" + ",\n".join(items) + "\n}" if items else "{}"


def _task_message(
    program: str, facts: Mapping[str, Any] | None, entry_point: str | None, protected: Sequence[str] = ()
) -> str:
    entry = f"The function under test is `{entry_point}`." if entry_point else ""
    others = [n for n in protected if n != entry_point]
    if others:
        entry += " These names are used by the tests and must keep their names: " + ", ".join(
            f"`{n}`" for n in others
        ) + "."
    entry = entry.strip() + "\n\n" if entry else ""
    return (
        f"{entry}Program:\n```python\n{program.rstrip()}\n```\n\n"
        f"Static-analysis facts for this concept:\n```json\n{render_facts(facts)}\n```"
    )


def builtin_concept(concept: AnyConcept | str) -> Concept:
    """``concept`` parsed; the prompts (rules, worked examples) are written for the built-in concepts only.

    Raises:
        UserError: a user-defined concept, naming it and the generator that handles it.
    """
    parsed = Concept.parse(concept)
    if not isinstance(parsed, Concept):
        raise UserError(f"concept {parsed.value!r} is user-defined: the LLM generator has prompts for the built-in "
                         "concepts only; perturb it with the rule generator (--concept-rules)")
    return parsed


def system_prompt(concept: Concept | str) -> str:
    """The task statement with the concept's rules and the answer format."""
    concept = builtin_concept(concept)
    return (
        "You write counterfactual versions of Python programs: semantics-preserving transformations that "
        "change exactly one programming concept, used to test whether code models understand that concept.\n\n"
        f"{_RULES[concept]}\n\n{_COMMON_RULES}\n\n{_ANSWER_FORMAT}"
    )


def build_messages(
    program: str,
    concept: Concept | str,
    facts: Mapping[str, Any] | None,
    entry_point: str | None = None,
    facts_fn: FactsFn | None = default_facts,
    protected_names: Sequence[str] = (),
) -> list[dict[str, str]]:
    """The one-shot chain-of-thought conversation asking for ``concept`` applied to ``program``.

    Args:
        program: the full original program (prompt + solution).
        concept: which transformation to ask for.
        facts: the static-analysis facts of ``program`` for ``concept`` (``None``: not available).
        entry_point: the function under test, which must keep its name.
        protected_names: other names the tests use (top-level functions, globals), which must keep theirs.
        facts_fn: computes the worked example's facts so they have the same shape as ``facts``;
            ``None`` leaves the example without facts.
    """
    concept = builtin_concept(concept)
    example = _EXAMPLES[concept]
    example_entry = example.program.split("def ", 1)[1].split("(", 1)[0]
    example_facts = facts_fn(example.program, concept, (example_entry,)) if facts_fn is not None else None
    return [
        {"role": "system", "content": system_prompt(concept)},
        {"role": "user", "content": _task_message(example.program, example_facts, example_entry)},
        {"role": "assistant", "content": f"{example.reasoning}\n\n```python\n{example.answer.rstrip()}\n```"},
        {"role": "user", "content": _task_message(program, facts, entry_point, sorted(protected_names))},
    ]


def build_repair_message(reason: str) -> dict[str, str]:
    """The user turn that sends a validation failure back to the model."""
    return {
        "role": "user",
        "content": (
            f"Your answer was rejected: {reason}\n"
            "Fix the problem and answer again in the same format: brief reasoning, then the COMPLETE "
            "program in one ```python block."
        ),
    }


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:\n)?```", re.DOTALL)


@dataclass(frozen=True)
class ParsedReply:
    """What a model answer contains: code, a not-applicable claim, or neither (``error`` says what)."""

    code: str | None = None
    not_applicable: str | None = None
    error: str | None = None


def extract_code(reply: str) -> ParsedReply:
    """Read a model answer.

    The LAST fenced block tagged ``python``/``py`` (or untagged) is the program: chain-of-thought
    answers often quote snippets before the final program. A reply without such a block that starts a
    line with :data:`NOT_APPLICABLE_MARKER` is a not-applicable claim. The program keeps a trailing
    newline, like the originals.
    """
    blocks = [body for tag, body in _FENCE.findall(reply) if tag.lower() in ("", "python", "py", "python3")]
    if blocks:
        code = blocks[-1].rstrip() + "\n"
        return ParsedReply(code=code)
    for line in reply.splitlines():
        if line.strip().startswith(NOT_APPLICABLE_MARKER):
            why = line.strip()[len(NOT_APPLICABLE_MARKER):].strip() or "the model found no applicable site"
            return ParsedReply(not_applicable=why)
    return ParsedReply(
        error="the answer contains no ```python fenced code block; put the complete program in one"
    )
