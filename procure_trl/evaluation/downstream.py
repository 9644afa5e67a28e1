"""Two downstream tasks on near-miss mutant pairs (``procure mutate`` output): ``procure evaluate --task repair``
and ``--task detect``.

* **repair**: the model gets the task statement and a buggy program (the mutant of the original, or the same
  mutation in the counterfactual) and writes the whole program; it passes when the problem's tests pass. Reported:
  repair pass@k per concept and mutation kind, and repair consistency across the two contexts of the same bug (the
  CCS machinery: :func:`~procure_trl.metrics.ccs.concept_consistency_score`, with the counterfactual context as
  the prediction and the original context as the reference).
* **detect**: the model judges each of the four programs of a pair (original, counterfactual, and their mutants)
  ``correct`` or ``buggy`` by comparing the likelihood of the two fixed answers after one fixed prompt
  (:func:`detect_prompt`; no sampling). Reported: accuracy, and consistency: the share of (original version,
  counterfactual version) pairs of one program (the correct pair and the buggy pair) judged alike.

Only killed pairs are used (both mutants fail a test: real bugs). The backend needs a ``score(prompts, answers)``
method for ``detect`` (:class:`~procure_trl.evaluation.sampling.ScriptedBackend` takes a ``scorer``;
:class:`~procure_trl.evaluation.sampling.TransformersBackend` sums the answer tokens' log-probabilities).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from procure_trl.dataset.prompt_format import chat_request
from procure_trl.errors import UserError
from procure_trl.perturb.records import CounterfactualRecord
from procure_trl.problems import Problem

__all__ = ["DETECT_ANSWERS", "DownstreamReport", "REPAIR_INSTRUCTION", "detect_prompt", "evaluate_downstream",
           "repair_prompt"]

#: What the repair prompt asks for.
REPAIR_INSTRUCTION = ("The Python program below has a bug: it fails the task's tests. Write the corrected program in "
                      "full, as plain code (no Markdown).")
#: The detect question, and its two fixed answers (correct first).
DETECT_QUESTION = "Is the Python program above correct or buggy for this task? Answer with one word: correct or buggy."
DETECT_ANSWERS = ("correct", "buggy")
TASKS = ("generate", "repair", "detect")


def _comment(text: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in text.splitlines())


def repair_prompt(fmt: str, statement: str, buggy: str) -> str:
    """The request prompt of one repair: chat (the statement, :data:`REPAIR_INSTRUCTION`, the program; the answer
    is the whole program) or completion (the same as ``#`` comments; the program written after them is run)."""
    if fmt == "chat":
        return chat_request(f"{statement}\n\n{REPAIR_INSTRUCTION}\n{buggy}", "")
    return f"{_comment(statement)}\n#\n{_comment(REPAIR_INSTRUCTION)}\n#\n{_comment(buggy)}\n\n"


def detect_prompt(fmt: str, statement: str, program: str) -> str:
    """The one detect prompt: chat (statement, program, :data:`DETECT_QUESTION` in the user turn) or completion
    (statement as comments, the program, the question as a comment, then ``# Answer:``); each answer of
    :data:`DETECT_ANSWERS` is scored after it (with a leading space in completion format)."""
    if fmt == "chat":
        return chat_request(f"{statement}\n\n{program}\n\n{DETECT_QUESTION}", "")
    return f"{_comment(statement)}\n{program.rstrip()}\n\n# {DETECT_QUESTION}\n# Answer:"


def detect_answers(fmt: str) -> tuple[str, str]:
    correct, buggy = DETECT_ANSWERS
    return (correct, buggy) if fmt == "chat" else (f" {correct}", f" {buggy}")


@dataclass
class DownstreamReport:
    """The result of ``--task repair`` or ``--task detect`` (``report.json`` in the output folder)."""

    task: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    per_group: dict[str, dict[str, Any]]
    pairs: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "config": self.config, "metrics": self.metrics, "per_group": self.per_group,
                "pairs": self.pairs}

    def summary(self) -> str:
        """A Markdown table: one row per concept / mutation kind, then the overall figures."""
        keys = [k for k in next(iter(self.per_group.values()), {}) if k != "pairs"]
        lines = [f"## {self.task}", "", "| concept / mutation | pairs | " + " | ".join(keys) + " |",
                 "|---|---|" + "---|" * len(keys)]
        for name, entry in self.per_group.items():
            lines.append(f"| {name} | {entry['pairs']} | " + " | ".join(_fmt(entry[k]) for k in keys) + " |")
        lines += ["", "overall: " + ", ".join(f"{k} {_fmt(v)}" for k, v in self.metrics.items()
                                              if not isinstance(v, dict))]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def killed_mutant_pairs(path: str | os.PathLike) -> list[tuple[CounterfactualRecord, CounterfactualRecord]]:
    """The killed pairs of a ``procure mutate`` file (a clear error for any other file)."""
    from procure_trl.perturb.mutate import killed_pairs
    from procure_trl.perturb.records import read_records

    records = read_records(path)
    if not any(r.mutation for r in records):
        raise UserError(f"{path} holds no mutant rows; give the output of `procure mutate` (--mutants)")
    pairs = killed_pairs(records)
    if not pairs:
        raise UserError(f"{path}: no killed mutant pair to evaluate (see the table `procure mutate` printed)")
    return pairs


def evaluate_downstream(config, *, problems: Sequence[Problem] | None = None, backend=None) -> DownstreamReport:
    """Run ``config.task`` (``repair`` or ``detect``) on the killed pairs of ``config.mutants``, or of the ``mutants``
    config of ``config.dataset`` (its ``config.split``: held-out tasks); write the report. The adapter guards of
    :mod:`procure_trl.evaluation.guards` apply as for ``generate``."""
    from procure_trl.dataset.prompt_format import TaskText
    from procure_trl.evaluation.formats import resolve_prompt_format

    if not (config.mutants or config.dataset):
        raise UserError(f"--task {config.task} needs --mutants MUTANTS.jsonl (the output of `procure mutate`) or "
                        "--dataset DIR with a mutants config")
    if config.adapter and not config.allow_base_mismatch:
        from procure_trl.evaluation.guards import check_adapter_base

        check_adapter_base(config.adapter, config.model)
    pairs, by_id, source = _dataset_pairs(config, problems) if config.dataset else _file_pairs(config, problems)
    missing = sorted({o.task_id for o, _ in pairs if o.task_id not in by_id})
    if missing:
        raise UserError(f"{source}: no problem (tests) for task(s) {', '.join(missing[:5])}; pass --benchmark "
                         "with those problems")
    if config.concepts:
        pairs = [p for p in pairs if p[0].concept.value in config.concepts]
        if not pairs:
            raise UserError(f"{source}: no killed pair of the concepts {', '.join(config.concepts)}")
    if config.limit:
        keep = list(dict.fromkeys(o.task_id for o, _ in pairs))[: config.limit]
        pairs = [p for p in pairs if p[0].task_id in keep]
    _check_held_out(config, [by_id[t] for t in dict.fromkeys(o.task_id for o, _ in pairs)], list(by_id.values()))
    fmt = resolve_prompt_format(config, backend)
    statements = {t: TaskText.from_problem(by_id[t]).statement for t in {o.task_id for o, _ in pairs}}
    run = _repair if config.task == "repair" else _detect
    metrics, per_group, details = run(config, fmt, pairs, by_id, statements, backend)
    report = DownstreamReport(config.task, config.to_dict(), metrics, per_group, details)
    os.makedirs(config.output_dir, exist_ok=True)
    path = os.path.join(config.output_dir, "report.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report.to_dict(), handle, indent=1)
    with open(os.path.join(config.output_dir, "summary.md"), "w", encoding="utf-8") as handle:
        handle.write(report.summary() + "\n")
    report.files["report"] = path
    return report


Pairs = list[tuple[CounterfactualRecord, CounterfactualRecord]]


def _file_pairs(config, problems: Sequence[Problem] | None) -> tuple[Pairs, dict[str, Problem], str]:
    """The killed pairs of ``config.mutants`` and the problems of their tasks (``problems``, else the benchmark
    ``config.benchmark`` names, else those of the task ids)."""
    pairs = killed_mutant_pairs(config.mutants)
    if problems is None:
        from procure_trl.problems import problems_of_tasks

        source = config.benchmark if config.benchmark != "humaneval" else None
        return pairs, problems_of_tasks([o.task_id for o, _ in pairs], source), str(config.mutants)
    return pairs, {p.task_id: p for p in problems}, str(config.mutants)


def _dataset_pairs(config, problems: Sequence[Problem] | None) -> tuple[Pairs, dict[str, Problem], str]:
    """The pairs of the ``mutants`` config of ``config.dataset`` (split ``config.split``; a concept config of
    ``dataset_config`` keeps that concept's pairs) and the problems of their tasks (``problems``, else
    ``config.benchmark``, else the benchmarks of the task ids)."""
    from procure_trl.dataset.mutant_rows import MUTANTS_CONFIG, mutant_pairs_from_rows
    from procure_trl.dataset.rows import load_dataset_split
    from procure_trl.evaluation.selection import benchmarks_of
    from procure_trl.problems import load_problems

    source = f"dataset {config.dataset} (config {MUTANTS_CONFIG}, split {config.split})"
    try:
        rows = load_dataset_split(config.dataset, MUTANTS_CONFIG, config.split)
    except ValueError as err:
        if f"no split {config.split!r}" in str(err):
            raise
        raise UserError(f"dataset {config.dataset} has no {MUTANTS_CONFIG} config to score --task {config.task} on: "
                         "build it with `procure build --mutants MUTANTS.jsonl` (the output of `procure mutate`)"
                         ) from err
    pairs = mutant_pairs_from_rows(rows)
    if config.dataset_config != "all":
        pairs = [p for p in pairs if p[0].concept.value == config.dataset_config]
    if not pairs:
        raise UserError(f"{source}: no mutant pair" + (f" of {config.dataset_config}" if config.dataset_config != "all"
                                                        else ""))
    task_ids = list(dict.fromkeys(o.task_id for o, _ in pairs))
    if problems is None:
        names = config.benchmark.split(",") if config.benchmark else benchmarks_of(task_ids, config.dataset)
        config.benchmark = ",".join(names)  # the report names what the tests came from
        problems = [p for name in names for p in load_problems(name.strip())]
    config.benchmark = config.benchmark or "the given problems"
    return pairs, {p.task_id: p for p in problems}, source


def _check_held_out(config, selected: Sequence[Problem], known: Sequence[Problem]) -> None:
    """The refusals of ``generate``: an adapter scored on tasks it trained on, or on near duplicates of them."""
    from procure_trl.evaluation.guards import check_near_duplicate_overlap, check_train_overlap

    if config.adapter and not config.allow_train_overlap:
        check_train_overlap(config.adapter, [p.task_id for p in selected])
        check_near_duplicate_overlap(config.adapter, selected, known)


def _group_names(pair: Sequence[CounterfactualRecord]) -> list[str]:
    return [pair[0].concept.value, f"{pair[0].concept.value}/{pair[0].mutation}"]


def _repair(config, fmt, pairs, by_id, statements, backend):
    from procure_trl.evaluation.run import sample_completions
    from procure_trl.metrics.ccs import concept_consistency_score
    from procure_trl.metrics.functional_correctness import execute_candidates
    from procure_trl.metrics.pass_at_k import pass_at_k

    prompts = [[repair_prompt(fmt, statements[m.task_id], m.code) for m in pair] for pair in pairs]
    entry = {p: by_id[pair[0].task_id].entry_point for pair, two in zip(pairs, prompts) for p in two}
    completions = sample_completions(list(dict.fromkeys(p for two in prompts for p in two)), config, backend, entry)
    from procure_trl.dataset.prompt_format import program_prefix

    flat = [(p, by_id[pair[0].task_id].tests) for pair, two in zip(pairs, prompts) for p in two]
    outcomes = execute_candidates([[program_prefix(p) + c for c in completions[p]] for p, _ in flat],
                                  [tests for _, tests in flat], num_workers=config.num_workers, timeout=config.timeout)
    passed = [[int(o.passed) for o in task] for task in outcomes]
    originals, counterfactuals = passed[0::2], passed[1::2]

    def scores(index: list[int]) -> dict[str, Any]:
        both = [originals[i] for i in index] + [counterfactuals[i] for i in index]
        out: dict[str, Any] = {"pairs": len(index)}
        for key, value in pass_at_k([len(r) for r in both], [sum(r) for r in both], config.k).items():
            out[f"repair_{key}"] = float(value)
        ccs = concept_consistency_score([counterfactuals[i] for i in index], [originals[i] for i in index],
                                        n_bootstrap=min(config.n_bootstrap, 200), seed=config.seed)
        out["consistency"] = ccs["ccs"]
        return out

    groups: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        for name in _group_names(pair):
            groups.setdefault(name, []).append(i)
    metrics = scores(list(range(len(pairs))))
    details = [{"task_id": o.task_id, "concept": o.concept.value, "mutation": o.mutation, "sites": o.sites,
                "variant": o.variant, "original": originals[i], "counterfactual": counterfactuals[i]}
               for i, (o, _) in enumerate(pairs)]
    return metrics, {name: scores(index) for name, index in groups.items()}, details


def _detect(config, fmt, pairs, by_id, statements, backend):
    if backend is None:
        from procure_trl.evaluation.sampling import build_backend

        backend = build_backend(config)
    if not hasattr(backend, "score"):
        raise UserError(f"--task detect compares answer likelihoods: the {type(backend).__name__} backend cannot "
                         "score answers; use --backend transformers")
    answers = detect_answers(fmt)
    programs = []  # per pair: (original, counterfactual, mutant of the original, mutant of the counterfactual)
    for o, c in pairs:
        programs.append([(o.original, False), (o.counterfactual, False), (o.code, True), (c.code, True)])
    prompts = [detect_prompt(fmt, statements[pair[0].task_id], text) for pair, four in zip(pairs, programs)
               for text, _ in four]
    unique = list(dict.fromkeys(prompts))
    scored = backend.score([p for p in unique for _ in answers], [a for _ in unique for a in answers])
    buggy = {p: scored[2 * i + 1] > scored[2 * i] for i, p in enumerate(unique)}
    judged = [[buggy[prompts[4 * i + j]] for j in range(4)] for i in range(len(pairs))]
    truth = [[bug for _, bug in four] for four in programs]

    def scores(index: list[int]) -> dict[str, Any]:
        right = sum(judged[i][j] == truth[i][j] for i in index for j in range(4))
        alike = sum(judged[i][a] == judged[i][b] for i in index for a, b in ((0, 1), (2, 3)))
        return {"pairs": len(index), "accuracy": right / (4 * len(index)), "consistency": alike / (2 * len(index))}

    groups: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        for name in _group_names(pair):
            groups.setdefault(name, []).append(i)
    details = [{"task_id": o.task_id, "concept": o.concept.value, "mutation": o.mutation, "sites": o.sites,
                "variant": o.variant, "judged_buggy": judged[i]} for i, (o, _) in enumerate(pairs)]
    return scores(list(range(len(pairs)))), {name: scores(index) for name, index in groups.items()}, details


def score_answers(model, tokenizer, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
    """Sum of the log-probabilities of each answer's tokens after its prompt (the prompt rendered as the model
    sees it: :func:`~procure_trl.dataset.prompt_format.render_request`)."""
    import torch

    from procure_trl.dataset.prompt_format import model_input_ids

    out = []
    with torch.inference_mode():
        for prompt, answer in zip(prompts, answers):
            prefix = model_input_ids(tokenizer, prompt)
            full = model_input_ids(tokenizer, prompt + answer) if not prompt.startswith("<procure-chat-request>") \
                else prefix + tokenizer(answer, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([full], device=model.device)
            logits = model(input_ids=ids).logits.float().log_softmax(-1)[0]
            targets = full[len(prefix):]
            out.append(float(sum(logits[len(prefix) + t - 1, tok] for t, tok in enumerate(targets))))
    return out
