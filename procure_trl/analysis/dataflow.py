"""Reaching definitions and def-use chains of function-local variables, on :mod:`procure_trl.analysis.cfg`.

For every local variable of a function we compute which definitions (assignments, loop targets, ``with``
targets, parameters -- plus a pseudo-definition "unbound" at entry) reach each use. From that:

* :func:`def_use_chains`: for each definition, the uses it reaches;
* :func:`redefinitions`: variables defined more than once, with every definition and its uses, and which
  definitions are *separable* -- every use they reach is reached by no other definition -- so that the
  definition and its uses can take a fresh name without changing behaviour (the ``def_use_break`` rule).
"""

from __future__ import annotations

import ast
import heapq
from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass, field

from procure_trl.analysis.cfg import CFG, TRY_STATEMENTS, build_cfg, node_parts
from procure_trl.analysis.scopes import Binding, Occurrence, OccurrenceKind, Scope, ScopeAnalysis, ScopeKind

#: the id of the pseudo-definition "the variable is unbound here" (and of parameters' definitions)
UNBOUND = -1
PARAMETER = -2


@dataclass
class Definition:
    """One definition site of a variable: a CFG node and the identifier occurrences it stores."""

    variable: str
    cfg_node: int  # UNBOUND / PARAMETER for the pseudo-definitions at entry
    line: int
    stores: list[Occurrence] = field(default_factory=list)
    uses: list[Occurrence] = field(default_factory=list)  # the uses this definition reaches
    separable: bool = False  # it reaches uses, each reached by it alone: it can take a fresh name
    why_not: str = ""

    def to_dict(self) -> dict:
        return {
            "line": self.line,
            "uses": sorted({u.line for u in self.uses}),
            "separable": self.separable,
        }


@dataclass
class VariableFlow:
    """Def-use facts of one variable of one function."""

    binding: Binding
    definitions: list[Definition]  # real definitions in source order (parameters first)
    reaching: dict[int, set[int]]  # id(use occurrence) -> ids of the definitions (cfg nodes) reaching it
    eligible: bool  # False when the variable's flow cannot be tracked (closures, try, del, walrus...)
    why_not: str = ""

    @property
    def name(self) -> str:
        return self.binding.name

    @property
    def is_redefined(self) -> bool:
        return len(self.definitions) >= 2

    def to_dict(self) -> dict:
        return {
            "variable": self.name,
            "function": self.binding.scope.name,
            "definitions": [d.to_dict() for d in self.definitions],
        }


class _Worklist:
    """The CFG nodes left to (re)visit, always popped in reverse postorder from the entry: a forward
    analysis then settles each node of straight-line code in one visit and each loop in a few passes
    (a stack visiting the last node first made long functions quadratic)."""

    def __init__(self, cfg: CFG, rank: dict[int, int] | None = None) -> None:
        self.rank = rank if rank is not None else _reverse_postorder(cfg)
        self.heap = [(self.rank[n.id], n.id) for n in cfg.nodes]
        heapq.heapify(self.heap)
        self.queued = {n.id for n in cfg.nodes}

    def __bool__(self) -> bool:
        return bool(self.heap)

    def pop(self) -> int:
        _, nid = heapq.heappop(self.heap)
        self.queued.discard(nid)
        return nid

    def extend(self, nids) -> None:
        for nid in nids:
            if nid not in self.queued:
                self.queued.add(nid)
                heapq.heappush(self.heap, (self.rank[nid], nid))


def _reverse_postorder(cfg: CFG) -> dict[int, int]:
    """cfg node id -> its place in reverse postorder from the entry (unreachable nodes last).

    Successors are explored last one first: a loop header lists its body before the code after the loop,
    so the body is finished last and comes right after the header in the order, before the code after the
    loop (explored first, the body would come after the rest of the function, and every pass around the
    loop would revisit all of it).
    """
    post: list[int] = []
    seen = {cfg.entry}
    stack = [(cfg.entry, reversed(cfg.nodes[cfg.entry].succ))]
    while stack:
        nid, successors = stack[-1]
        for succ in successors:
            if succ not in seen:
                seen.add(succ)
                stack.append((succ, reversed(cfg.nodes[succ].succ)))
                break
        else:
            stack.pop()
            post.append(nid)
    order = post[::-1] + [n.id for n in cfg.nodes if n.id not in seen]
    return {nid: rank for rank, nid in enumerate(order)}


def _occurrence_nodes(cfg: CFG) -> dict[int, int]:
    """id(ast node) -> cfg node id, for every ast node a CFG node evaluates."""
    where: dict[int, int] = {}
    for cfg_node in cfg.nodes:
        if cfg_node.kind == "handler":
            where[id(cfg_node.node)] = cfg_node.id  # the ``as name`` binding
        for part in node_parts(cfg_node):
            for sub in ast.walk(part):
                where.setdefault(id(sub), cfg_node.id)
    return where


#: Builtins (and methods) that call a lambda / consume a generator expression passed to them right away.
EAGER_CALLEES = frozenset({"sorted", "min", "max", "sum", "any", "all", "list", "tuple", "set", "dict", "frozenset"})
EAGER_METHODS = frozenset({"join", "sort"})


def eager_arguments(function_node: ast.AST, analysis: ScopeAnalysis) -> set[int]:
    """ids of lambdas and generator expressions passed directly to a call that runs them at once
    (``sorted(xs, key=lambda x: ...)``, ``sum(x for x in xs)``, ``"".join(...)``)."""
    eager: set[int] = set()
    for node in ast.walk(function_node):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in EAGER_CALLEES or analysis.binding_at(func) is not None:
                continue
        elif not (isinstance(func, ast.Attribute) and func.attr in EAGER_METHODS):
            continue
        for arg in (*node.args, *[k.value for k in node.keywords]):
            if isinstance(arg, (ast.Lambda, ast.GeneratorExp)):
                eager.add(id(arg))
    return eager


def _enclosing_lazy(occ: Occurrence, function: Scope, eager: Set[int] = frozenset()) -> bool:
    """True when the occurrence may run later than its statement: inside a nested function, or a lambda
    or generator expression that is not run on the spot (list/set/dict comprehensions always are)."""
    scope: Scope | None = occ.scope
    while scope is not function and scope is not None:
        if scope.kind is ScopeKind.COMPREHENSION and not isinstance(scope.node, ast.GeneratorExp):
            pass
        elif scope.kind in (ScopeKind.COMPREHENSION, ScopeKind.LAMBDA) and id(scope.node) in eager:
            pass
        else:
            return True
        scope = scope.parent
    return scope is None


def function_flows(analysis: ScopeAnalysis, function: Scope, candidates: list[Binding]) -> list[VariableFlow]:
    """Reaching definitions for the given bindings of ``function`` (a FUNCTION scope)."""
    func_node = function.node
    assert isinstance(func_node, (ast.FunctionDef, ast.AsyncFunctionDef))
    cfg = build_cfg(func_node)
    where = _occurrence_nodes(cfg)
    hard: set[int] = set()  # finally blocks: the CFG does not model "finally, then resume the jump"
    target_loads: dict[int, ast.Assign] = {}  # loads inside assignment targets -> their statement
    for node in ast.walk(func_node):
        if isinstance(node, TRY_STATEMENTS):
            for stmt in node.finalbody:
                hard.update(id(n) for n in ast.walk(stmt))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if not isinstance(target, ast.Name):
                    for sub in ast.walk(target):
                        target_loads[id(sub)] = node
    aug_targets = {id(n.target) for n in ast.walk(func_node) if isinstance(n, ast.AugAssign)}
    # an assignment expression may run zero or several times within its statement (comprehensions,
    # short-circuits): a variable it binds has no statement-level definition point
    hard.update(walrus_targets(func_node))
    eager = eager_arguments(func_node, analysis)
    rank = _reverse_postorder(cfg)  # one visiting order for every variable's analysis
    flows: list[VariableFlow] = []
    for binding in candidates:
        flows.append(_variable_flow(binding, function, cfg, where, hard, target_loads, aug_targets, eager, rank))
    return flows


def _reachable(cfg: CFG) -> set[int]:
    """CFG nodes reachable from the entry."""
    seen = {cfg.entry}
    stack = [cfg.entry]
    while stack:
        for succ in cfg.nodes[stack.pop()].succ:
            if succ not in seen:
                seen.add(succ)
                stack.append(succ)
    return seen


def walrus_targets(node: ast.AST) -> set[int]:
    """ids of the targets of the assignment expressions (``:=``) inside ``node``."""
    return {id(n.target) for n in ast.walk(node) if isinstance(n, ast.NamedExpr)}


def _variable_flow(binding, function, cfg, where, hard, target_loads, aug_targets, eager, rank) -> VariableFlow:
    uses: list[Occurrence] = []
    stores: dict[int, list[Occurrence]] = {}
    has_param = False
    why = ""
    for occ in binding.occurrences:
        if occ.kind is OccurrenceKind.PARAMETER:
            has_param = True
            continue
        if _enclosing_lazy(occ, function, eager):
            why = "read or written by a nested function, lambda or generator that may run later"
            break
        if id(occ.node) in hard:
            why = "bound by an assignment expression (:=) or used inside a finally block"
            break
        if occ.kind in (OccurrenceKind.DELETE, OccurrenceKind.DECLARATION, OccurrenceKind.OTHER):
            why = f"has a {occ.kind.value} occurrence"
            break
        if occ.span is None or id(occ.node) not in where:
            why = "occurrence not located"
            break
        if occ.kind is OccurrenceKind.LOAD:
            statement = target_loads.get(id(occ.node))
            if statement is not None and any(
                o.kind is OccurrenceKind.STORE and any(o.node is n for n in ast.walk(statement))
                for o in binding.occurrences
            ):
                why = "read inside the target of an assignment that also binds it"
                break
            uses.append(occ)
        else:  # STORE
            stores.setdefault(where[id(occ.node)], []).append(occ)
            if id(occ.node) in aug_targets:
                uses.append(occ)  # x += 1 reads x (before its statement redefines it)
    if why:
        return VariableFlow(binding, [], {}, False, why)
    # reaching definitions for one variable: IN/OUT are sets of defining cfg node ids
    entry_def = PARAMETER if has_param else UNBOUND
    gen = set(stores)
    out: dict[int, frozenset[int]] = {n.id: frozenset() for n in cfg.nodes}
    out[cfg.entry] = frozenset({entry_def})
    in_: dict[int, frozenset[int]] = {}
    worklist = _Worklist(cfg, rank)
    while worklist:
        nid = worklist.pop()
        node = cfg.nodes[nid]
        if nid == cfg.entry:
            continue
        incoming = frozenset().union(*(out[p] for p in node.pred)) if node.pred else frozenset()
        in_[nid] = incoming
        new_out = frozenset({nid}) if nid in gen else incoming
        if new_out != out[nid]:
            out[nid] = new_out
            worklist.extend(node.succ)
    reaching = {id(u): set(in_.get(where[id(u.node)], frozenset())) for u in uses}
    definitions: list[Definition] = []
    if has_param:
        definitions.append(Definition(binding.name, PARAMETER, function.node.lineno))
    # every stored occurrence has a span (checked above); (0, 0) only satisfies the type checker
    for nid in sorted(stores, key=lambda n: stores[n][0].span or (0, 0)):
        definitions.append(Definition(binding.name, nid, stores[nid][0].line, stores=stores[nid]))
    by_id = {d.cfg_node: d for d in definitions}
    for u in uses:
        for reaching_node in reaching[id(u)]:
            if reaching_node in by_id:
                by_id[reaching_node].uses.append(u)
    reachable = _reachable(cfg)
    for d in definitions:
        if d.cfg_node == PARAMETER:
            d.why_not = "a parameter keeps its name"
        elif d.cfg_node not in reachable:
            d.why_not = "unreachable (after a return, raise, break or continue)"
        elif not d.uses:
            d.why_not = "reaches no use"
        elif any(id(s.node) in aug_targets for s in d.stores):
            d.why_not = "augmented assignment (reads and redefines at once)"
        elif any(id(u.node) in aug_targets for u in d.uses):
            d.why_not = "reaches an augmented assignment"
        elif any(reaching[id(u)] != {d.cfg_node} for u in d.uses):
            d.why_not = "a use it reaches is also reached by another definition"
        else:
            d.separable = True
    return VariableFlow(binding, definitions, reaching, True)


def redefinitions(analysis: ScopeAnalysis, bindings: list[Binding]) -> list[VariableFlow]:
    """Def-use facts of every variable among ``bindings`` that is defined at least twice in its
    function (a parameter counts as a definition)."""
    by_function: dict[int, list[Binding]] = {}
    for b in bindings:
        if b.scope.kind is ScopeKind.FUNCTION:
            by_function.setdefault(b.scope.id, []).append(b)
    flows: list[VariableFlow] = []
    scopes = {s.id: s for s in analysis.module.walk()}
    for scope_id, group in by_function.items():
        defined_twice = [b for b in group if _definition_count(b) >= 2]
        if defined_twice:
            flows.extend(
                f for f in function_flows(analysis, scopes[scope_id], defined_twice) if f.eligible and f.is_redefined
            )
    return flows


def _definition_count(binding: Binding) -> int:
    count = 0
    for occ in binding.occurrences:
        if occ.kind in (OccurrenceKind.STORE, OccurrenceKind.PARAMETER):
            count += 1
    return count


class NameSet(Set):
    """A read-only set of names stored as a bit mask over a shared tuple of names: the per-statement
    results of :func:`definitely_bound` share one name table instead of each holding its own set (in a long
    function every statement would otherwise hold a set of nearly every local: quadratic memory)."""

    __slots__ = ("_names", "_index", "_mask")

    def __init__(self, names: tuple[str, ...], index: dict[str, int], mask: int) -> None:
        self._names, self._index, self._mask = names, index, mask

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        bit = self._index.get(name)
        return bit is not None and bool(self._mask >> bit & 1)

    def __iter__(self) -> Iterator[str]:
        return (name for bit, name in enumerate(self._names) if self._mask >> bit & 1)

    def __len__(self) -> int:
        return self._mask.bit_count()

    def __hash__(self) -> int:
        return self._hash()

    @classmethod
    def _from_iterable(cls, names: Iterable[str]) -> frozenset[str]:  # type: ignore[override]
        # (Set's own signature returns an instance of the class; here it deliberately does not)
        # results of set operators (``a | b``, ``a - b``) are plain frozensets: they need no shared table
        return frozenset(names)

    def __repr__(self) -> str:
        return f"NameSet({sorted(self)!r})"


def definitely_bound(analysis: ScopeAnalysis, function: Scope) -> dict[int, NameSet]:
    """For each simple statement of ``function`` (keyed by ``id(stmt)``), the local names that are bound
    on *every* path reaching it (a must-analysis: reading them there cannot raise ``NameError``).

    The sets are bit masks over the function's locals, so one pass over a node costs a few machine words
    per 64 locals: linear in the function's length for straight-line code.
    """
    func_node = function.node
    assert isinstance(func_node, (ast.FunctionDef, ast.AsyncFunctionDef))
    cfg = build_cfg(func_node)
    where = _occurrence_nodes(cfg)
    eager = eager_arguments(func_node, analysis)
    conditional = walrus_targets(func_node)  # may not run at all within their statement
    names = tuple(function.bindings)
    index = {name: bit for bit, name in enumerate(names)}
    gen: dict[int, int] = {}
    kill: dict[int, int] = {}
    for binding in function.bindings.values():
        bit = 1 << index[binding.name]
        for occ in binding.occurrences:
            if (
                occ.kind is OccurrenceKind.PARAMETER
                or occ.scope is not function
                and _enclosing_lazy(occ, function, eager)
            ):
                continue
            nid = where.get(id(occ.node))
            if nid is None or id(occ.node) in conditional:
                continue
            if occ.kind is OccurrenceKind.DELETE:
                kill[nid] = kill.get(nid, 0) | bit
            elif occ.kind in (OccurrenceKind.STORE, OccurrenceKind.OTHER):
                gen[nid] = gen.get(nid, 0) | bit
    top = (1 << len(names)) - 1
    out: dict[int, int] = {n.id: top for n in cfg.nodes}
    out[cfg.entry] = sum(1 << index[n] for n in set(function.parameters) if n in index)
    in_: dict[int, int] = {}
    worklist = _Worklist(cfg)
    while worklist:
        nid = worklist.pop()
        if nid == cfg.entry:
            continue
        node = cfg.nodes[nid]
        incoming = top
        for p in node.pred:
            incoming &= out[p]
        in_[nid] = incoming
        new_out = (incoming | gen.get(nid, 0)) & ~kill.get(nid, 0)
        if new_out != out[nid]:
            out[nid] = new_out
            worklist.extend(s for s in node.succ if s != cfg.entry)
    return {id(n.node): NameSet(names, index, in_.get(n.id, top)) for n in cfg.nodes if n.kind == "stmt"}
