"""``procure perturb``: generate counterfactual programs for a benchmark or a JSONL file, and validate them.

Thin: parses arguments, checks the output, loads problems, calls :func:`procure_trl.perturb.engine.generate_to_jsonl`
(or the LLM generator, :mod:`procure_trl.commands.perturb_llm`), prints the per-concept table and the bad
input rows, and turns ^C / SIGTERM into one line and exit status 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from procure_trl.commands.interrupts import INTERRUPTED_EXIT, sigterm_as_interrupt
from procure_trl.commands.options import add_options, config_kwargs
from procure_trl.concepts import Concept
from procure_trl.errors import UserError, print_error

if TYPE_CHECKING:
    from procure_trl.problems import InvalidProblem, Problem

_EPILOG = """\
output (one JSON object a line, per (problem, concept), in input order then concept order):
  task_id        the problem
  concept        one of: {concepts}; or a concept defined in --concept-rules
  status         valid | not_applicable | rejected
  reason         why not valid (empty when valid)
  original       the full original program (prompt + solution)
  code           the perturbed full program, when one was produced (null otherwise)
  changed_spans  [[start, end), ...] character offsets into code of the changed text
  stage          the step that decided (input, perturbation, duplicate, parse, no-op, concept, spans,
                 original, execution, passed, unvalidated)
  generator      rule | llm | ast-grep (a concept of --concept-rules)
  sites          places changed (rule engine, when code was produced)
  variant        0, 1, ... with --variants N > 1 (up to N distinct rows per (problem, concept))

validation (skipped with --no-validate): de-duplication against the original and the accepted
candidates of the same problem (in concept order), parsing, an AST check that the concept's change and only it happened
(for --concept-rules concepts: that only sites of their rules changed, each into its fix), the changed spans, and the
problem's tests in a sandboxed subprocess with a timeout. The same --seed gives byte-identical output.
Bad input rows (invalid JSON, missing fields, unparsable code) become 'rejected' lines (stage input)
naming the row and the fix; the rest of the batch goes on, and the end of the run lists them
(--strict: exit 1 when there is any).

long runs: lines are appended as each problem is done. ^C or SIGTERM stops the run (exit 130) and says
how many pairs were written; the same command with --resume continues it, and the finished file is
byte-identical to an uninterrupted run's. An existing --output is refused unless --resume or --overwrite.

environment: PROCURE_MBPP_DIR (a local copy of MBPP: mbpp.jsonl and sanitized-mbpp.json; unset: the Hub's
google-research-datasets/mbpp), PROCURE_CODECONTESTS_FILE (CodeContests rows in the Hub
schema, for offline use).

examples:
  procure perturb --dataset my_org/sft_code --split train --output-dir outputs/sft_code_cf --num-proc 2
  procure perturb --benchmark humaneval --output outputs/humaneval_counterfactuals.jsonl --seed 0
  procure perturb problems.jsonl --output out.jsonl --concepts name_random,if_else_flip --num-workers 4
  procure perturb --benchmark mbpp --concept-rules procure_trl/rules/example_concepts.yml --output out.jsonl
"""


def _benchmark(text: str) -> str:
    from procure_trl.problems import BENCHMARKS

    if text not in BENCHMARKS:
        from procure_trl.errors import did_you_mean

        raise ValueError(
            f"invalid choice {text!r}{did_you_mean(text, BENCHMARKS)} (choose from {', '.join(BENCHMARKS)})"
        )
    return text


@dataclass
class PerturbArguments:
    r"""What ``procure perturb`` reads and where it writes (the engines' settings are their own configs).

    Parameters:
        input (`str`, *optional*):
            Problems in the project's JSONL format (`task_id`, `prompt`, `solution`, `tests`, `entry_point`); the
            command's positional argument.
        benchmark (`str`, *optional*):
            A built-in benchmark (`humaneval`, `mbpp`, `mbpp-sanitized`, `codecontests`) instead of `input`.
        split (`str`, *optional*):
            Benchmark split: MBPP `train`/`test`/`validation`/`prompt` (`None`: all problems), CodeContests
            `train`/`valid`/`test` (`None`: `test`); with `--dataset`, the dataset's split.
        limit (`int`, *optional*):
            Only the first `limit` problems; `None`: all.
        output (`str`, *optional*):
            The JSONL file the rows are written to (for `input` or `benchmark`).
        generator (`str`, defaults to `"rule"`):
            `rule`: the rule-based perturbations; `llm`: an LLM behind an OpenAI-compatible endpoint.
    """

    input: str | None = field(default=None, metadata={
        "help": "problems in the project's JSONL format (task_id, prompt, solution, tests, entry_point)",
        "positional": True, "metavar": "INPUT.jsonl"})
    benchmark: str | None = field(default=None, metadata={
        "help": "a built-in benchmark instead of INPUT.jsonl", "parse": _benchmark,
        "metavar": "{humaneval,mbpp,mbpp-sanitized,codecontests}"})
    split: str | None = field(default=None, metadata={
        "help": "benchmark split: MBPP train/test/validation/prompt (default: all problems), CodeContests "
                "train/valid/test (default: test)"})
    limit: int | None = field(default=None, metadata={"help": "only the first N problems"})
    output: str | None = field(default=None, metadata={
        "help": "the JSONL file to write (for INPUT.jsonl or --benchmark)", "flags": ("--output", "-o"),
        "metavar": "OUT.jsonl"})
    generator: Literal["rule", "llm"] = field(default="rule", metadata={
        "help": "rule: the rule-based perturbations; llm: an LLM via an OpenAI-compatible endpoint (options below)"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from procure_trl.perturb.engine import GenerationConfig
    from procure_trl.perturb.records import OutputConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG.format(concepts=", ".join(c.value for c in Concept))
    add_options(parser, PerturbArguments, exclude=("generator",))
    add_options(parser, GenerationConfig)
    add_options(parser, OutputConfig)
    add_options(parser, PerturbArguments, only=("generator",))
    from procure_trl.perturb.scale.config import SHARED_WITH_GENERATION, DatasetPerturbConfig

    group = parser.add_argument_group("any Hugging Face dataset (--dataset ID_OR_PATH --output-dir DIR): a dataset "
                                      "of the same format, with --split, --limit and the options above")
    add_options(group, DatasetPerturbConfig, exclude=SHARED_WITH_GENERATION)
    from procure_trl.commands import perturb_llm as llm_cli  # light: openai is imported only when --generator llm runs

    llm_cli.add_arguments(parser)


def _run_dataset(args) -> int:
    from procure_trl.perturb.engine import GenerationConfig
    from procure_trl.perturb.scale.card import format_counts_table
    from procure_trl.perturb.scale.config import SHARED_WITH_GENERATION, DatasetPerturbConfig
    from procure_trl.perturb.scale.run import perturb_dataset

    if args.input or args.benchmark or args.output:
        raise UserError(
            "--dataset writes a dataset folder: give --output-dir, not INPUT.jsonl, --benchmark or --output"
        )
    if args.generator != "rule":
        raise UserError("--dataset runs the rule-based generator; drop --generator llm")
    jsonl_only = [flag for flag in ("--resume", "--overwrite", "--strict") if getattr(args, flag[2:])]
    if jsonl_only:
        raise UserError(f"{', '.join(jsonl_only)} apply to --output OUT.jsonl runs, not to --dataset; drop them")
    if args.concept_rules:
        raise UserError("--concept-rules applies to --benchmark and INPUT.jsonl, not to --dataset")
    # --concepts, --seed and --timeout are the engine's (GenerationConfig); --split and --limit this command's
    try:  # the settings only: the library raises UserError for bad input, and a bug keeps its traceback
        engine = GenerationConfig(**config_kwargs(GenerationConfig, args))
        config = DatasetPerturbConfig(**config_kwargs(DatasetPerturbConfig, args, exclude=SHARED_WITH_GENERATION),
                                      concepts=list(engine.concept_list), seed=engine.seed, timeout=engine.timeout,
                                      split=args.split or DatasetPerturbConfig.split, limit=args.limit)
    except ValueError as err:
        raise UserError(str(err)) from err
    result = perturb_dataset(config)
    print(f"format: {result.format.describe()}")
    print(format_counts_table(result.counts))
    print(f"wrote {result.counts.originals} original and {result.counts.counterfactuals} counterfactual rows to "
          f"{result.output_dir} (datasets.load_dataset({str(result.output_dir)!r}) reads it)")
    return 0


def _load(args, max_program_kb: int | None = None) -> Sequence[Problem | InvalidProblem]:
    from procure_trl.problems import load_problems, read_jsonl

    if bool(args.input) == bool(args.benchmark):
        raise UserError("give exactly one of INPUT.jsonl or --benchmark NAME")
    problems: Sequence[Problem | InvalidProblem]
    if args.input:
        if args.split:
            raise UserError("--split applies to --benchmark only")
        problems = read_jsonl(args.input, max_program_kb=max_program_kb)  # a huge program is not even parsed
    else:
        problems = load_problems(args.benchmark, split=args.split)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be a positive number of problems, got {args.limit}")
    return problems[: args.limit] if args.limit else problems


def run(args: argparse.Namespace) -> int:
    from procure_trl.commands import perturb_llm as llm_cli
    from procure_trl.perturb.records import OutputConfig, check_output_path

    llm_only = llm_cli.options_set(args)
    if args.generator == "rule" and llm_only:
        raise UserError(f"{', '.join(llm_only)} apply to --generator llm only; add --generator llm or drop them")
    if args.dataset:
        return _run_dataset(args)
    dataset_only = [flag for flag, value in (("--output-dir", args.output_dir), ("--code-column", args.code_column),
                                             ("--tests-column", args.tests_column)) if value]
    if dataset_only:
        raise UserError(f"{', '.join(dataset_only)} apply to --dataset only")
    if not args.output:
        raise UserError("give --output OUT.jsonl (or --dataset ID_OR_PATH --output-dir DIR)")
    output = OutputConfig(**config_kwargs(OutputConfig, args))
    # before any work: a run must not fail at its end for want of a place to write
    check_output_path(args.output, resume=output.resume, overwrite=output.overwrite)
    config = None  # the concepts before the problems load: a bad name fails fast
    if args.generator == "llm":
        if args.concept_rules:
            raise UserError("--concept-rules applies to the rule generator; drop --generator llm")
        try:
            concepts = Concept.parse_list(args.concepts)
        except ValueError as err:
            raise UserError(f"--concepts: {err}") from None
    else:
        from procure_trl.perturb.engine import GenerationConfig

        config = GenerationConfig(**config_kwargs(GenerationConfig, args))  # loads --concept-rules
        concepts = list(config.concept_list)
    problems = _load(args, config.max_source_kb if config is not None else None)
    total = len(problems) * len(concepts)
    try:
        with sigterm_as_interrupt():
            if config is None:
                return int(llm_cli.run(args, problems, concepts, output) or 0)
            return _run_rule_engine(args, problems, output, config)
    except KeyboardInterrupt:
        print(f"interrupted: {_lines_written(args.output)} of {total} pairs written; rerun with --resume",
              file=sys.stderr)
        return INTERRUPTED_EXIT


def _run_rule_engine(args: argparse.Namespace, problems: Sequence[Problem | InvalidProblem], output,
                     config) -> int:
    from procure_trl.perturb.engine import format_summary_table, generate_to_jsonl

    records = generate_to_jsonl(problems, args.output, config, resume=output.resume, overwrite=output.overwrite,
                                inputs=_inputs(args))
    print(format_summary_table(records))
    return report_run(records, args.output, output.strict)


def _inputs(args: argparse.Namespace) -> dict:
    """Where the problems came from, as recorded with the run (the file's own fingerprint is the engine's)."""
    import os

    source = os.path.abspath(args.input) if args.input else args.benchmark
    return {"input": source, "split": args.split, "limit": args.limit}


def report_run(records: list, path: str, strict: bool) -> int:
    """Print the bad input rows and where the lines went; the exit status (1 for bad input with ``strict``)."""
    return report_bad_input(records, "procure perturb", strict, wrote=f"wrote {len(records)} lines to {path}")


def report_bad_input(records: list, prog: str, strict: bool, source: str = "", wrote: str = "") -> int:
    """Print the bad input rows of ``records`` (then ``wrote``, if given); exit status 1 when there are some and
    ``strict``, else 0 (``procure perturb`` and ``procure mutate`` alike)."""
    from procure_trl.perturb.engine import bad_input_rows, format_bad_input

    block = format_bad_input(records)
    if block:
        print(block)
    if wrote:
        print(wrote)
    if strict and block:
        where = f" in {source}" if source else ""
        print_error(prog, f"{len(bad_input_rows(records))} bad input row(s){where} and --strict; "
                    "fix them (listed above) or drop --strict")
        return 1
    return 0


def _lines_written(path: str) -> int:
    from procure_trl.perturb.records import read_records

    try:
        return len(read_records(path, allow_empty=True, torn_tail=True))
    except (OSError, ValueError):
        return 0
