"""Pure static analysis of Python programs (stdlib ``ast``; no model code).

* :mod:`~procure_trl.analysis.program` -- parsing once (cached), :class:`InvalidProgramError`;
* :mod:`~procure_trl.analysis.spans` -- byte/character offsets and span edits that report new spans;
* :mod:`~procure_trl.analysis.scopes` -- scopes, bindings, name resolution, what may be renamed;
* :mod:`~procure_trl.analysis.values` -- which locals provably hold ints / strs;
* :mod:`~procure_trl.analysis.effects` -- read/write/effect sets of statements, independence;
* :mod:`~procure_trl.analysis.blocks` -- statement blocks with their scope;
* :mod:`~procure_trl.analysis.swaps` -- adjacent statements that may trade places;
* :mod:`~procure_trl.analysis.branches` -- if/else structure;
* :mod:`~procure_trl.analysis.cfg` -- a statement-level control-flow graph per function;
* :mod:`~procure_trl.analysis.dataflow` -- reaching definitions, def-use chains, redefinitions;
* :mod:`~procure_trl.analysis.facts` -- :func:`analyze`, everything above as one JSON-able object.
"""

from __future__ import annotations

from procure_trl.analysis.cfg import CFG, build_cfg
from procure_trl.analysis.facts import ProgramFacts, analyze
from procure_trl.analysis.program import InvalidProgramError, load_program
from procure_trl.analysis.scopes import ScopeAnalysis, analyze_scopes, renameable_bindings

__all__ = [
    "CFG",
    "InvalidProgramError",
    "ProgramFacts",
    "ScopeAnalysis",
    "analyze",
    "analyze_scopes",
    "build_cfg",
    "load_program",
    "renameable_bindings",
]
