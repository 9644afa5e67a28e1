"""``procure evaluate``: pass@k and the Concept Consistency Score of a model on a benchmark."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from procure_trl.harness.config import BACKENDS, EvaluationConfig


def _ks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes comma-separated integers like 1,5, not {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(EvaluationConfig)}
    parser.add_argument("--model", required=True, help="Hub model id or local directory of a causal LM")
    parser.add_argument("--adapter", help="PEFT adapter directory applied on top of --model")
    parser.add_argument("--benchmark", default="humaneval",
                        help="humaneval, mbpp, mbpp-sanitized, codecontests, or a problems JSONL path")
    parser.add_argument("--split", help="benchmark split (MBPP, CodeContests)")
    parser.add_argument("--counterfactuals", help="`procure perturb` JSONL for this benchmark; enables CCS")
    parser.add_argument("--concepts", help="comma-separated concepts to evaluate (default: all)")
    parser.add_argument("--output", required=True, help="output directory (report.json, summary.md, plots, cache)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N problems")
    parser.add_argument("--n", type=int, default=defaults["n"], help="completions per prompt (default %(default)s)")
    parser.add_argument("--k", type=_ks, default=(1, 5), help="k values of pass@k, e.g. 1,5 (default 1,5)")
    parser.add_argument("--temperature", type=float, default=defaults["temperature"])
    parser.add_argument("--top-p", type=float, default=defaults["top_p"])
    parser.add_argument("--max-new-tokens", type=int, default=defaults["max_new_tokens"])
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    parser.add_argument("--backend", choices=BACKENDS, default=defaults["backend"])
    parser.add_argument("--dtype", default=defaults["dtype"], help="weights dtype (auto, bfloat16, float16, float32)")
    parser.add_argument("--device", help="torch device (default: cuda when available)")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--line-fraction", type=float, default=defaults["line_fraction"],
                        help="share of solution lines kept in non-if/else prompts (default %(default)s)")
    parser.add_argument("--if-else-line-cut", action="store_true",
                        help="cut if_else_flip programs by lines too, not at the flipped then-branch")
    parser.add_argument("--timeout", type=float, default=defaults["timeout"], help="seconds per program")
    parser.add_argument("--num-workers", type=int, default=defaults["num_workers"])
    parser.add_argument("--confidence", type=float, default=defaults["confidence"])
    parser.add_argument("--n-bootstrap", type=int, default=defaults["n_bootstrap"])
    parser.add_argument("--seed", type=int, default=defaults["seed"])
    parser.add_argument("--metrics-dir", help="folder with the pass_at_k and ccs metric modules")
    parser.add_argument("--cache-file", help="completion cache (default: OUTPUT/completions.jsonl)")


def config_from_args(args: argparse.Namespace) -> EvaluationConfig:
    return EvaluationConfig(
        model=args.model,
        adapter=args.adapter,
        benchmark=args.benchmark,
        split=args.split,
        counterfactuals=args.counterfactuals,
        concepts=args.concepts.split(",") if args.concepts else None,
        output_dir=args.output,
        limit=args.limit,
        n=args.n,
        k=args.k,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        backend=args.backend,
        dtype=args.dtype,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        line_fraction=args.line_fraction,
        if_else_at_branch=not args.if_else_line_cut,
        timeout=args.timeout,
        num_workers=args.num_workers,
        confidence=args.confidence,
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
        metrics_dir=args.metrics_dir,
        cache_file=args.cache_file,
    )


def run(args: argparse.Namespace) -> int:
    from procure_trl.harness.report import markdown_summary
    from procure_trl.harness.run import evaluate_model

    try:
        report = evaluate_model(config_from_args(args))
    except (ValueError, PermissionError, FileNotFoundError) as exc:
        # Bad input (flags, files, missing opt-in): one line that says what to fix, no traceback.
        print(f"procure evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(markdown_summary(report))
    print(f"report: {report.files['report']}")
    return 0
