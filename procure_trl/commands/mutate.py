"""``procure mutate``: near-miss mutant pairs at the concept's sites of valid counterfactuals, kept only when the
tests kill them.

Thin: parses arguments, checks the output, reads the counterfactuals, loads the problems' tests, calls
:func:`procure_trl.perturb.mutate.mutants_to_jsonl`, prints the per-concept/kind table; ^C or SIGTERM gives one
line and exit status 130 (rerun with --resume).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

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


@dataclass
class MutateArguments:
    r"""What ``procure mutate`` reads and where it writes (the mutation settings are :class:`MutationConfig`'s).

    Parameters:
        counterfactuals (`str`):
            The counterfactual rows to mutate: a `procure perturb` JSONL file (its `valid` rows are used).
        output (`str`):
            The JSONL file the mutant rows are written to.
        problems (`str`, *optional*):
            Where the tests come from: a benchmark name (`humaneval`, `mbpp`, `mbpp-sanitized`) or a problems JSONL;
            `None`: the benchmarks the task ids name.
    """

    counterfactuals: str = field(metadata={"help": "`procure perturb` output: the counterfactual rows to mutate",
                                           "metavar": "CF.jsonl"})
    output: str = field(metadata={"help": "the JSONL file to write the mutant rows to", "flags": ("--output", "-o"),
                                  "metavar": "OUT.jsonl"})
    problems: str | None = field(default=None, metadata={
        "help": "benchmark name (humaneval, mbpp, mbpp-sanitized) or problems JSONL with the tests (default: the "
                "benchmarks the task ids name)", "metavar": "NAME_OR_FILE"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from procure_trl.perturb.mutate import MutationConfig
    from procure_trl.perturb.records import OutputConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    add_options(parser, MutateArguments)
    add_options(parser, MutationConfig)
    add_options(parser, OutputConfig)


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
        files = MutateArguments(**config_kwargs(MutateArguments, args))
        output = OutputConfig(**config_kwargs(OutputConfig, args))
        config = MutationConfig(**config_kwargs(MutationConfig, args))
    except ValueError as err:
        raise UserError(str(err)) from err
    check_output_path(files.output, resume=output.resume, overwrite=output.overwrite)
    records = read_records(files.counterfactuals)
    problems = problems_of_tasks([r.task_id for r in records if not _bad_input(r)], files.problems)
    rows = counterfactual_rows(records, problems, files.counterfactuals)
    check_variants(rows, problems, files.counterfactuals, files.problems or "the benchmarks of its task ids")
    try:
        with sigterm_as_interrupt():
            lines = mutants_to_jsonl(rows, problems, files.output, config, resume=output.resume,
                                     overwrite=output.overwrite, inputs={"counterfactuals": _fingerprint(files)})
    except KeyboardInterrupt:
        print("interrupted: rerun the same command with --resume to continue", file=sys.stderr)
        return INTERRUPTED_EXIT
    print(format_mutation_table(lines))
    print(format_rejects_by_stage(lines) or "rejected by stage: none")
    print(f"wrote {len(lines)} lines ({len(killed_pairs(lines))} killed pairs) to {files.output}")
    from procure_trl.commands.perturb import report_bad_input

    # procure perturb kept the bad rows as `rejected` lines of stage `input`; they give no mutants
    return report_bad_input(records, "procure mutate", output.strict, source=files.counterfactuals)


def _bad_input(record) -> bool:
    from procure_trl.statuses import REJECTED, Stage

    return record.status == REJECTED and record.stage == Stage.INPUT


def _fingerprint(files: MutateArguments) -> str:
    import hashlib

    with open(files.counterfactuals, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read()).hexdigest()[:16]
