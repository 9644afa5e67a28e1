"""Reaching definitions of one variable in one scope: which assignments each use can see.

Used by the def-use check: a candidate that gives one definition of ``x`` a fresh name must rename
exactly the uses that definition reaches, and those uses must be reached by no other definition.

The analysis walks the scope's statements in order, carrying the set of definitions (AST nodes) that
may reach the current point, and joins the sets where control flow joins (``if`` branches, loop back
edges reached by iterating to a fixed point, ``break``/``continue``, ``try`` handlers entered from any
point of the ``try`` body). It over-approximates where Python is dynamic (``while True`` still gets a
normal exit), which only makes the check stricter.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

State = frozenset | None  # None: unreachable point
_EMPTY: frozenset = frozenset()


def _join(*states: State) -> State:
    live = [s for s in states if s is not None]
    if not live:
        return None
    out: frozenset = _EMPTY
    for s in live:
        out |= s
    return out


class ReachingDefinitions:
    """Reaching definitions of the variable whose occurrences ``is_var(node)`` accepts.

    ``is_var(node)`` must return True for the ``ast.Name`` nodes (any context) that are this scope's
    variable, and for ``def``/``class``/``import alias``/``except`` nodes that bind it.

    After :meth:`run`, ``uses`` maps every reading occurrence (``ast.Name`` in Load or Del context, and
    ``x`` in ``x += ...``) to the frozenset of definition nodes that may reach it, and ``definitions``
    lists every defining node.
    """

    def __init__(self, is_var: Callable[[ast.AST], bool]) -> None:
        self.is_var = is_var
        self.uses: dict[ast.AST, frozenset] = {}
        self.definitions: list[ast.AST] = []
        self._loops: list[tuple[list, list]] = []  # (break states, continue states)
        self._tries: list[list] = []  # states seen inside each enclosing try body

    # -- entry ---------------------------------------------------------------------------------
    def run(self, scope_node: ast.AST) -> ReachingDefinitions:
        if not isinstance(scope_node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            raise TypeError(f"reaching definitions run over a module, class, function or lambda, "
                            f"not a {type(scope_node).__name__}")
        body: list[ast.stmt]
        body = scope_node.body if isinstance(scope_node.body, list) else [ast.Return(scope_node.body)]  # lambda
        state: State = _EMPTY
        args = getattr(scope_node, "args", None)
        if isinstance(args, ast.arguments):  # parameters are the first definitions of a function's variables
            for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if arg is not None and self.is_var(arg):
                    state = self._define(arg, state)
        self._block(body, state)
        return self

    # -- helpers --------------------------------------------------------------------------------
    def _define(self, node: ast.AST, state: State) -> State:
        if state is None:
            return None
        if node not in self.definitions:
            self.definitions.append(node)
        return frozenset([node])

    def _use(self, node: ast.AST, state: State) -> None:
        previous = self.uses.get(node, _EMPTY)
        self.uses[node] = previous | (state or _EMPTY)

    def _note(self, state: State) -> None:
        for collected in self._tries:
            collected.append(state)

    # -- expressions ------------------------------------------------------------------------------
    def _expr(self, node: ast.AST | None, state: State) -> State:
        """Visit an expression in evaluation order; only walrus targets define."""
        if node is None:
            return state
        if isinstance(node, ast.Name):
            if self.is_var(node) and isinstance(node.ctx, ast.Load):
                self._use(node, state)
            return state
        if isinstance(node, ast.NamedExpr):
            state = self._expr(node.value, state)
            return self._define(node.target, state) if self.is_var(node.target) else state
        if isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return state  # other scopes: captured uses are rejected before this analysis runs
        for child in ast.iter_child_nodes(node):
            state = self._expr(child, state)
        return state

    def _target(self, target: ast.AST, state: State) -> State:
        """Assignment target: names define, subscripts/attributes read their base."""
        if isinstance(target, ast.Name):
            return self._define(target, state) if self.is_var(target) else state
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                state = self._target(element, state)
            return state
        if isinstance(target, ast.Starred):
            return self._target(target.value, state)
        return self._expr(target, state)  # x[i] = ..., x.a = ...: reads x (and i)

    # -- statements -------------------------------------------------------------------------------
    def _block(self, body: list[ast.stmt], state: State) -> State:
        for stmt in body:
            self._note(state)
            state = self._stmt(stmt, state)
        self._note(state)
        return state

    def _stmt(self, node: ast.stmt, state: State) -> State:  # noqa: C901 - one case per statement kind
        if isinstance(node, ast.Assign):
            state = self._expr(node.value, state)
            for target in node.targets:
                state = self._target(target, state)
            return state
        if isinstance(node, ast.AnnAssign):
            if node.value is None:
                return self._expr(node.annotation, state) if not isinstance(node.target, ast.Name) else state
            state = self._expr(node.value, state)
            return self._target(node.target, state)
        if isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name) and self.is_var(node.target):
                self._use(node.target, state)
                state = self._expr(node.value, state)
                return self._define(node.target, state)
            state = self._expr(node.target, state)
            return self._expr(node.value, state)
        if isinstance(node, (ast.Expr, ast.Assert)):
            return self._expr(node, state)
        if isinstance(node, ast.Return):
            self._expr(node.value, state)
            return None
        if isinstance(node, ast.Raise):
            self._expr(node.exc, state)
            self._expr(node.cause, state)
            return None
        if isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    if self.is_var(target):
                        self._use(target, state)
                        state = None if state is None else _EMPTY
                else:
                    state = self._expr(target, state)
            return state
        if isinstance(node, ast.Break):
            if self._loops:
                self._loops[-1][0].append(state)
            return None
        if isinstance(node, ast.Continue):
            if self._loops:
                self._loops[-1][1].append(state)
            return None
        if isinstance(node, ast.If):
            state = self._expr(node.test, state)
            return _join(self._block(node.body, state), self._block(node.orelse, state))
        if isinstance(node, (ast.For, ast.AsyncFor)):
            entry = self._expr(node.iter, state)
            return self._loop(entry, lambda head: self._target(node.target, head), node.body, node.orelse)
        if isinstance(node, ast.While):
            return self._loop(state, lambda head: self._expr(node.test, head), node.body, node.orelse,
                              exit_after_step=True)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                state = self._expr(item.context_expr, state)
                if item.optional_vars is not None:
                    state = self._target(item.optional_vars, state)
            return self._block(node.body, state)
        if isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            return self._try(node, state)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for expr in node.decorator_list:
                state = self._expr(expr, state)
            if isinstance(node, ast.ClassDef):
                for expr in node.bases + [k.value for k in node.keywords]:
                    state = self._expr(expr, state)
            else:
                for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                    state = self._expr(default, state)
            return self._define(node, state) if self.is_var(node) else state
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if self.is_var(alias):
                    state = self._define(alias, state)
            return state
        if isinstance(node, ast.Match):
            state = self._expr(node.subject, state)
            outs = [state]  # no case matched
            for case in node.cases:
                case_state = state
                for sub in ast.walk(case.pattern):
                    if self.is_var(sub):
                        case_state = self._define(sub, case_state)
                    elif isinstance(sub, ast.expr):
                        self._expr(sub, case_state)
                case_state = self._expr(case.guard, case_state)
                outs.append(self._block(case.body, case_state))
            return _join(*outs)
        # Pass, Global, Nonlocal and anything newer: no effect on this variable's definitions
        return self._expr(node, state) if not isinstance(node, (ast.Global, ast.Nonlocal, ast.Pass)) else state

    def _loop(self, entry: State, step, body, orelse, exit_after_step: bool = False) -> State:
        head = entry
        while True:
            breaks: list = []
            continues: list = []
            self._loops.append((breaks, continues))
            stepped = step(head)
            out = self._block(body, stepped)
            self._loops.pop()
            new_head = _join(entry, out, *continues)
            if new_head == head:
                break
            head = new_head
        # a for loop leaves from the head (iterator exhausted); a while loop after testing its condition
        exit_state = stepped if exit_after_step else head
        return _join(self._block(orelse, exit_state), *breaks)

    def _try(self, node, state: State) -> State:
        collected: list = [state]
        self._tries.append(collected)
        body_out = self._block(node.body, state)
        self._tries.pop()
        handler_entry = _join(*collected)
        outs = [self._block(node.orelse, body_out)]
        for handler in node.handlers:
            entry = self._expr(handler.type, handler_entry)
            if handler.name and self.is_var(handler):
                entry = self._define(handler, entry)
            outs.append(self._block(handler.body, entry))
        normal = _join(*outs)
        if node.finalbody:
            # finally runs on every exit, also exceptional ones: enter it from everything seen
            return self._block(node.finalbody, _join(normal, handler_entry))
        return normal
