"""``procure mutate``: near-miss mutant pairs at the concept's sites of valid counterfactuals, kept only when the
tests kill them.

Thin: parses arguments, checks the output, reads the counterfactuals, loads the problems' tests, calls
:func:`procure_trl.perturb.mutate.mutants_to_jsonl`, prints the per-concept/kind table; ^C or SIGTERM gives one
line and exit status 130 (rerun with --resume).
"""

from __future__ import annotations

import argparse
import sys

from procure_trl.commands.interrupts import INTERRUPTED_EXIT, sigterm_as_interrupt
from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.errors import UserError

_EPILOG = """\
output (one JSON object a line, the lines of `procure perturb` plus three fields; two lines per valid
counterfactual row and mutation kind, one per side):
  mutation        negated_condition (if_else_flip), dependent_swap (independent_swap), stale_use
                  (def_use_break), name_collision (name_random, name_shuffle), comparison, off_by_one, boolean
  mutant_of       original | counterfactual: the program code mutates
  counterfactual  the counterfactual program of the row
  status/stage    valid/killed: the mutant fails a test (a bug); rejected/survived: it passes every test
                  (dropped, never called a bug); rejected/execution: its tests timed out (undecided);
                  not_applicable/perturbation: the kind has no site in this pair
  code, changed_spans  the mutant and the [start, end) offsets of its edits (outside them it is its source)

The tests come from the benchmark of each task id (HumanEval/..., MBPP/...) or from --problems FILE.jsonl.
The same --seed gives byte-identical output; an interrupted run continues with --resume.

example:
  procure perturb --benchmark humaneval --output he_cf.jsonl
  procure mutate --counterfactuals he_cf.jsonl --output he_mutants.jsonl
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from procure_trl.perturb.mutate import MutationConfig
    from procure_trl.perturb.records import OutputConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("--counterfactuals", required=True, metavar="CF.jsonl", help="`procure perturb` output")
    parser.add_argument("--output", "-o", required=True, metavar="OUT.jsonl", help="where to write the mutant rows")
    parser.add_argument("--problems", metavar="NAME_OR_FILE",
                        help="benchmark name (humaneval, mbpp, mbpp-sanitized) or problems JSONL with the tests "
                             "(default: the benchmarks the task ids name)")
    add_options(parser, MutationConfig)
    add_options(parser, OutputConfig, exclude=("strict",))


def run(args: argparse.Namespace) -> int:
    from procure_trl.evaluation.counterfactuals import check_variants
    from procure_trl.perturb.engine import format_rejects_by_stage
    from procure_trl.perturb.mutate import (
        MutationConfig,
        counterfactual_rows,
        format_mutation_table,
        killed_pairs,
        mutants_to_jsonl,
    )
    from procure_trl.perturb.records import OutputConfig, check_output_path, read_records
    from procure_trl.problems import problems_of_tasks

    try:  # the settings only: the library raises UserError for bad input, and a bug keeps its traceback
        output = OutputConfig(**config_kwargs(OutputConfig, args, exclude=("strict",)))
        config = MutationConfig(**config_kwargs(MutationConfig, args))
    except ValueError as err:
        raise UserError(str(err)) from err
    check_output_path(args.output, resume=output.resume, overwrite=output.overwrite)
    records = read_records(args.counterfactuals)
    problems = problems_of_tasks([r.task_id for r in records], args.problems)
    rows = counterfactual_rows(records, problems, args.counterfactuals)
    check_variants(rows, problems, args.counterfactuals, args.problems or "the benchmarks of its task ids")
    try:
        with sigterm_as_interrupt():
            lines = mutants_to_jsonl(rows, problems, args.output, config, resume=output.resume,
                                     overwrite=output.overwrite, inputs={"counterfactuals": _fingerprint(args)})
    except KeyboardInterrupt:
        print("interrupted: rerun the same command with --resume to continue", file=sys.stderr)
        return INTERRUPTED_EXIT
    print(format_mutation_table(lines))
    print(format_rejects_by_stage(lines) or "rejected by stage: none")
    print(f"wrote {len(lines)} lines ({len(killed_pairs(lines))} killed pairs) to {args.output}")
    return 0


def _fingerprint(args: argparse.Namespace) -> str:
    import hashlib

    with open(args.counterfactuals, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read()).hexdigest()[:16]
