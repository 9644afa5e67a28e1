"""User-defined concepts from ast-grep rules: loading, rewriting, the rule check, validation, datasets, training."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from procure_trl.concepts import Concept, UserConcept
from procure_trl.perturb.engine import GenerationConfig, generate_counterfactuals
from procure_trl.perturb.records import CounterfactualRecord, read_records
from procure_trl.perturbations import perturb
from procure_trl.perturbations.concept_rules import ConceptRulesError, load_concept_rules, rule_sites
from procure_trl.problems import Problem
from procure_trl.validation.pipeline import check_spans
from procure_trl.validation.rule_checks import check_rule_rewrite

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "procure_trl" / "rules" / "example_concepts.yml"

PROGRAM = """\
def f(xs, k):
    n = 0
    for x in xs:
        if x != k:
            n += 1
        elif not x:
            n += 2
    return n != 0 and n
"""


@pytest.fixture(scope="module")
def shipped():
    negated, increment = load_concept_rules(SHIPPED)
    return negated, increment


def _write_rules(tmp_path, *docs) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


# ---- the shipped rules ----------------------------------------------------------------------------

def test_the_shipped_rules_define_two_registered_concepts(shipped):
    negated, increment = shipped
    assert (negated.value, increment.value) == ("negated_equality", "explicit_increment")
    assert [r.id for r in negated.rules] == ["ne-to-negated-eq"] and [r.id for r in increment.rules] == [
        "increment-to-assignment"]
    assert Concept.parse("negated_equality") is negated and negated.category == "comparison"


def test_sites_are_the_matches_and_each_rewrite_is_its_fix(shipped):
    negated, increment = shipped
    assert [(PROGRAM[s.start:s.end], s.replacement, s.line) for s in rule_sites(PROGRAM, negated)] == [
        ("x != k", "not (x == k)", 4), ("n != 0", "not (n == 0)", 8)]
    # `n += 2` is not `$X += 1`
    assert [(PROGRAM[s.start:s.end], s.replacement) for s in rule_sites(PROGRAM, increment)] == [
        ("n += 1", "n = n + 1")]


@pytest.mark.parametrize("seed", range(4))
def test_a_rewrite_changes_exactly_its_spans(shipped, seed):
    negated, _ = shipped
    result = perturb(PROGRAM, negated, seed=seed)
    (start, end), = result.changed_spans
    assert result.code[start:end] in ("not (x == k)", "not (n == 0)")
    assert check_spans(PROGRAM, result.code, result.changed_spans) is None
    assert check_rule_rewrite(PROGRAM, result.code, result.changed_spans, negated, sites=1) is None
    both = perturb(PROGRAM, "negated_equality", seed=seed, sites=2)
    assert [both.code[s:e] for s, e in both.changed_spans] == ["not (x == k)", "not (n == 0)"]
    reason = perturb(PROGRAM, negated, sites=3).reason
    assert reason == "2 disjoint match(es) of rule(s) ne-to-negated-eq, fewer than sites=3"


def test_chained_comparisons_are_not_sites(shipped):
    # Python reads `x!=y & y!=z` as the chain `x != (y & y) != z`; rewriting its first link would drop the rest
    assert rule_sites("r = x!=y & y!=z & z!=x\nq = a != b != c\n", shipped[0]) == []


def test_no_match_is_not_applicable(shipped):
    assert perturb("def g(a):\n    return a\n", shipped[1]).reason == "no match of rule(s) increment-to-assignment"


# ---- the rule check -----------------------------------------------------------------------------

def test_the_rule_check_rejects_changes_beside_the_sites(shipped):
    negated, _ = shipped
    good = PROGRAM.replace("x != k", "not (x == k)")
    start = good.index("not (x == k)")
    spans = [(start, start + len("not (x == k)"))]
    assert check_rule_rewrite(PROGRAM, good, spans, negated) is None
    elsewhere = good.replace("n += 2", "n += 3")
    assert "text after the last changed span differs" in check_rule_rewrite(PROGRAM, elsewhere, spans, negated)
    wrong_fix = PROGRAM.replace("x != k", "not (k == x)")
    assert "is not the rewrite of a match of rule(s) ne-to-negated-eq" in check_rule_rewrite(
        PROGRAM, wrong_fix, spans, negated)
    assert "expected 2 rewritten site(s), found 1" in check_rule_rewrite(PROGRAM, good, spans, negated, sites=2)
    assert "needs its changed spans" in check_rule_rewrite(PROGRAM, good, None, negated)
    assert "no ast-grep rule is known" in check_rule_rewrite(PROGRAM, good, spans, UserConcept("unknown_rules"))


# ---- bad rules files get one line naming the rule and the fix ------------------------------------

GOOD = {"id": "r1", "concept": "my_concept", "rule": {"pattern": "$A + 1"}, "fix": "1 + $A"}


@pytest.mark.parametrize("doc, message", [
    ({**GOOD, "fixx": "x"}, r"rule #1 \(r1\): unknown key 'fixx' \(did you mean 'fix'\?\)"),
    ({k: v for k, v in GOOD.items() if k != "concept"}, r"rule #1 \(r1\): missing concept"),
    ({**GOOD, "concept": "if_else_flip"}, "is a built-in concept; give the rule's concept another name"),
    ({**GOOD, "concept": "Bad-Name"}, "concept name 'Bad-Name' is not usable"),
    ({**GOOD, "fix": "$B + 1"}, r"fix uses \$B, which the pattern does not bind; bound: \$A"),
    ({**GOOD, "language": "rust"}, "language 'rust' is not supported"),
    ({**GOOD, "rule": {"patern": "$A"}}, "ast-grep refused the rule"),
])
def test_bad_rules_are_named(tmp_path, doc, message):
    with pytest.raises(ConceptRulesError, match=message):
        load_concept_rules(_write_rules(tmp_path, doc), register=False)


def test_a_missing_file_and_repeated_ids(tmp_path):
    with pytest.raises(ConceptRulesError, match="concept rules file .* not found"):
        load_concept_rules(tmp_path / "nope.yml")
    with pytest.raises(ConceptRulesError, match="rule id 'r1' is used twice"):
        load_concept_rules(_write_rules(tmp_path, GOOD, GOOD), register=False)


# ---- validation: the tests reject rewrites that change behaviour --------------------------------

BOX = Problem(
    "toy/box",
    "class Box:\n    def __init__(self):\n        self.n = 0\n\n    def __iadd__(self, k):\n"
    "        self.n = self.n + k\n"
    "        return self\n\n    def __add__(self, k):\n        b = Box()\n        b.n = self.n + k\n        return b\n"
    "\n"
    "def count(xs):\n",
    "    box = Box()\n    seen = box\n    for _ in xs:\n        box += 1\n    return seen.n\n",
    "assert count([1, 2, 3]) == 3\n", "count",
)
PLAIN = Problem("toy/plain", "def count(xs):\n", "    n = 0\n    for _ in xs:\n        n += 1\n    return n\n",
                "assert count([1, 2, 3]) == 3\n", "count")
BOUND = Problem("toy/bound", "def below(a, b):\n", "    return a < b\n",
                "assert below(1, 2)\nassert not below(2, 2)\n", "below")


def test_the_tests_reject_an_unsound_rewrite_and_keep_a_sound_one(shipped):
    _, increment = shipped
    records = generate_counterfactuals([BOX, PLAIN], GenerationConfig(concepts=[increment], progress=False,
                                                                       num_workers=1))
    by_task = {r.task_id: r for r in records}
    # in-place += on an aliased object: `box = box + 1` makes a new Box, `seen` keeps the old one
    assert by_task["toy/box"].status == "rejected" and str(by_task["toy/box"].stage) == "execution"
    assert by_task["toy/box"].reason.startswith("tests failed: AssertionError")
    assert by_task["toy/plain"].status == "valid" and by_task["toy/plain"].code.count("n = n + 1") == 1


def test_a_rule_that_changes_behaviour_is_rejected_by_the_tests(tmp_path):
    path = _write_rules(tmp_path, {"id": "lt-to-le", "concept": "widened_bound", "rule": {"pattern": "$A < $B"},
                                   "fix": "$A <= $B"})
    config = GenerationConfig(concept_rules=str(path), progress=False, num_workers=1)
    assert [c.value for c in config.concepts] == ["widened_bound"]
    (record,) = generate_counterfactuals([BOUND], config)
    assert (record.status, str(record.stage), record.generator) == ("rejected", "execution", "ast-grep")
    assert record.reason.startswith("tests failed: AssertionError") and "a <= b" in record.code


def test_unknown_concepts_without_rules_are_named():
    with pytest.raises(ValueError, match="--concepts: unknown concept 'widened_boundd'.*need --concept-rules"):
        GenerationConfig(concepts=["widened_boundd"])


def test_rows_of_a_user_concept_read_back_without_the_rules():
    row = {"task_id": "t/1", "concept": "some_rule_concept", "status": "not_applicable", "reason": "no match",
           "original": "x = 1\n", "generator": "ast-grep"}
    record = CounterfactualRecord.from_dict(row)
    assert record.concept.value == "some_rule_concept" and record.to_dict()["generator"] == "ast-grep"
    with pytest.raises(ValueError, match="unknown concept 'some_rule_concept'"):
        CounterfactualRecord.from_dict({**row, "generator": "rule"})


# ---- HumanEval + MBPP through the CLI, the dataset builder and the trainer ---------------------

# the text each shipped rule writes, and the original text it replaces (same metavariables, any spacing)
REWRITES = {
    "negated_equality": (re.compile(r"not \((?P<a>.+) == (?P<b>.+)\)", re.S),
                         lambda a, b: re.escape(a) + r"\s*!=\s*" + re.escape(b)),
    "explicit_increment": (re.compile(r"(?P<x>.+) = (?P=x) \+ 1", re.S), lambda x: re.escape(x) + r"\s*\+=\s*1"),
}


def _procure(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "procure_trl.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def engine_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("rules")
    paths = []
    for benchmark in ("humaneval", "mbpp"):
        path = out / f"{benchmark}.jsonl"
        done = _procure("perturb", "--benchmark", benchmark, "--concept-rules", str(SHIPPED), "--output", str(path),
                        "--num-workers", "2")
        assert done.returncode == 0, done.stderr[-2000:]
        paths.append(path)
    return out, paths


@pytest.mark.slow
def test_shipped_rules_on_humaneval_and_mbpp_give_rows_whose_spans_are_the_rewritten_sites(engine_output):
    _, paths = engine_output
    records = {path.stem: [r for r in read_records(path) if r.status == "valid"] for path in paths}
    assert all(records.values()), {name: len(rows) for name, rows in records.items()}  # both benchmarks give rows
    for concept, (written, replaced) in REWRITES.items():
        valid = [r for rows in records.values() for r in rows if r.concept.value == concept]
        assert valid, concept
        for record in valid:
            (start, end), = record.changed_spans
            rewrite = written.fullmatch(record.code[start:end])
            assert rewrite, (record.task_id, record.code[start:end])
            # outside the span the program is the original; inside, the original held the matched text
            tail = len(record.code) - end
            assert record.original[:start] == record.code[:start]
            assert record.original[len(record.original) - tail:] == record.code[end:]
            assert re.fullmatch(replaced(**rewrite.groupdict()), record.original[start:len(record.original) - tail])
            assert record.generator == "ast-grep" and str(record.stage) == "passed"


@pytest.mark.slow
def test_rule_rows_build_into_a_dataset_and_train(engine_output, tmp_path, tiny_tokenizer):
    out, paths = engine_output
    dataset_dir = tmp_path / "dataset"
    script = ROOT / "datasets_scripts" / "build_counterfactuals.py"
    done = subprocess.run([sys.executable, str(script), "--input-jsonl", ",".join(map(str, paths)),
                           "--benchmarks", "humaneval,mbpp", "--output-dir", str(dataset_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    from datasets import load_dataset

    built = load_dataset(str(dataset_dir), "explicit_increment", split="train")
    concepts = set(built["concept"])
    assert concepts == {"original", "explicit_increment"}
    for row in built:
        if row["concept"] == "explicit_increment":
            (start, end), = row["changed_spans"]
            assert REWRITES["explicit_increment"][0].fullmatch(row["completion"][start:end])

    from procure_trl.testing_utils import build_tiny_llama
    from procure_trl.training import ConceptAwareSFTConfig, ConceptAwareSFTTrainer

    # the 4 shortest pairs (counterfactual + its original), so that no rewritten site is truncated away
    counterfactuals = sorted((r for r in built if r["concept"] != "original"),
                             key=lambda r: len(r["prompt"]) + len(r["completion"]))[:4]
    pairs = {r["pair_id"] for r in counterfactuals}
    rows = built.filter(lambda r: r["pair_id"] in pairs).select_columns(["prompt", "completion", "changed_spans"])
    assert len(rows) == 8
    args = ConceptAwareSFTConfig(output_dir=str(tmp_path / "run"), max_steps=3, per_device_train_batch_size=4,
                                 max_length=1024, use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True,
                                 logging_steps=1)
    trainer = ConceptAwareSFTTrainer(build_tiny_llama(tiny_tokenizer), args=args, train_dataset=rows,
                                     processing_class=tiny_tokenizer)
    assert sum(map(sum, trainer.train_dataset["perturbation_mask"])) > 0  # the rewritten sites are in the mask
    trainer.train()
    logged = [log for log in trainer.state.log_history if "loss" in log]
    assert len(logged) == 3 and all(log["loss"] > 0 for log in logged)
    assert any(log.get("loss_att", 0) > 0 for log in logged)
