"""`pretrain_lm.tools.reproduce`: the paper-number data file, the runs it names, the verdicts.

Fast: the shipped data file parses, every row has a source and a check mark, every run of
every table parses as the gin configuration it names at both scales, malformed entries
are refused with their name, the direction verdicts, the reports and plots, and a failing
run stops with its command and log. Slow: every table that runs at demo scale runs end to
end on tiny budgets and writes a well-formed table and its PNGs.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import gin
import pytest

from pretrain_lm import gin_utils
from pretrain_lm.tools import reproduce
from pretrain_lm.tools.reproduce import RowResult


@pytest.fixture(scope="module")
def doc():
    return reproduce.load_tables()


def test_every_table_row_has_a_paper_source_and_a_check_mark(doc):
    assert len(doc["tables"]) >= 10
    for name, table in doc["tables"].items():
        assert table["rows"], name
        for row in table["rows"]:
            assert row["source"] and row["check"] in reproduce.CHECKS, (name, row["id"])
            # the paper's arXiv or ACL Anthology id is named in the table
            assert "arXiv" in table["paper"] or "ACL Anthology" in table["paper"], name
    listing = reproduce.list_tables(doc)
    for name in doc["tables"]:
        assert name in listing
    # The rows marked R (not verified against the PDF) are the ones the reference lists.
    taglm = {r["id"]: r for r in doc["tables"]["taglm_lm_ablation"]["rows"]}
    assert taglm["bidirectional"]["paper"] == 91.93 and taglm["bidirectional"]["check"] == "V-2src"
    assert taglm["none"]["check"] == "R"


def test_the_list_command_names_the_tables():
    out = subprocess.run([sys.executable, "-m", "pretrain_lm.tools.reproduce", "--list"],
                         capture_output=True, text=True, check=True, cwd=reproduce.ROOT)
    assert "taglm_lm_ablation" in out.stdout and "transformer_table3" in out.stdout


def _all_commands(doc):
    for group_name, group in doc["run_groups"].items():
        runner = reproduce.GroupRunner(group_name, group, "/tmp/reproduce_parse")
        for run_id, spec in group["runs"].items():
            if spec.get("kind") != "ensemble":  # train and decode runs read gin
                yield group_name, run_id, runner.command(run_id), runner.model_dirs(run_id)


def test_every_run_parses_as_a_gin_configuration(doc):
    """Both scales: the gin files exist, every binding names a known parameter."""
    commands = list(_all_commands(doc))
    assert len(commands) > 30
    scales = set()
    for group_name, run_id, command, model_dirs in commands:
        gin_files = [c.split("=", 1)[1] for c in command if c.startswith("--gin_file=")]
        bindings = [b.split("=", 1)[1] for b in gin_utils.rewrite_gin_args(command)
                    if b.startswith("--gin_bindings=")]
        gin.clear_config()
        try:
            gin_utils.parse(gin_files, bindings)
        except Exception as e:  # name the run in the failure
            pytest.fail(f"{group_name}/{run_id}: {e}")
        assert gin_utils.macro("MODEL_DIR") == model_dirs[0], (group_name, run_id)
        scales.add(doc["run_groups"][group_name]["scale"])
    gin.clear_config()
    assert scales == {"demo", "full", "benchmark"}


def test_seeds_references_and_the_root_override(doc):
    group = doc["run_groups"]["austen_ner"]
    runner = reproduce.GroupRunner("austen_ner", group, "R/austen_ner")
    assert runner.model_dirs("lm_taglm") == ["R/austen_ner/lm_taglm-seed_0",
                                             "R/austen_ner/lm_taglm-seed_1"]
    command = runner.command("lm_taglm", 1)
    assert "--gin.BILM_DIR=R/austen_ner/elmo_tiny" in command
    assert "--gin.SEED=1" in command and "--gin.LM=taglm" in command
    assert "--gin.MODEL_DIR=R/austen_ner/lm_taglm-seed_1" in command
    # The flags read back as the data file's bindings.
    bindings = gin_utils.rewrite_gin_args(command)
    assert "--gin_bindings=BILM_DIR = 'R/austen_ner/elmo_tiny'" in bindings
    assert "--gin_bindings=LM = 'taglm'" in bindings
    assert reproduce.gin_flag("EPOCHS = 180") == "--gin.EPOCHS=180"
    assert reproduce.gin_flag("X = '1'") == "--gin.X='1'"  # a bare 1 would be a number
    assert gin_utils.rewrite_gin_args([reproduce.gin_flag("X = None")]) == [
        "--gin_bindings=X = None"]
    assert command[-1] == "--results_json=R/austen_ner/lm_taglm-seed_1/results.json"
    assert reproduce.group_root(group, "austen_ner", "X") == os.path.join("X", "austen_ner")
    assert reproduce.group_root(group, "austen_ner", None) == group["root"]
    # An ``evaluate`` run relaunches the finished run with the test split as eval data.
    runner = reproduce.GroupRunner("conll2003_ner", doc["run_groups"]["conll2003_ner"], "R")
    train, test = runner.command("unk", 2), runner.command("unk_test", 2)
    assert runner.model_dirs("unk_test") == runner.model_dirs("unk")
    assert test[:-1] == [*train[:-1], "--gin.eval/data.DataConfig.split=test"]
    assert test[-1] == "--results_json=R/unk-seed_2/results_test.json"


def _write(tmp_path, doc) -> str:
    path = str(tmp_path / "tables.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d["tables"]["taglm_lm_ablation"]["rows"][0].pop("source"), "needs a 'label'"),
    (lambda d: d["tables"]["taglm_lm_ablation"]["rows"][0].update(check="maybe"), "'check'"),
    (lambda d: d["tables"]["taglm_lm_ablation"]["rows"][0].pop("paper"), "'paper' must be"),
    (lambda d: d["tables"]["taglm_lm_ablation"]["rows"][0].update(paper="91"), "'paper' must"),
    (lambda d: d["tables"]["taglm_lm_ablation"]["rows"][0].update(demo="lm_nope"),
     "run 'lm_nope' is not in group"),
    (lambda d: d["run_groups"]["ulmfit_austen"]["runs"]["3_classifier"]["bindings"].update(
        ENCODER_DIR="'{run:2_lm_typo}'"), "refers to run '2_lm_typo'"),
    (lambda d: d["tables"]["taglm_lm_ablation"]["directions"].append(
        {"better": "none", "worse": "nobody", "claim": "x"}), "must name two of its rows"),
    (lambda d: d["tables"]["elmo_table1"]["rows"][2].pop("missing"), "say why"),
])
def test_a_malformed_data_file_is_refused_by_name(tmp_path, doc, breakage, message):
    broken = copy.deepcopy(doc)
    breakage(broken)
    with pytest.raises(reproduce.TablesError, match=message):
        reproduce.load_tables(_write(tmp_path, broken))


def _row(id_, ours, std=None, seeds=1, hib=True, paper=None):
    return RowResult(id_, id_, paper, None, "src", "V-text", ours, std, seeds, hib)


def test_direction_verdicts():
    table = {"directions": [
        {"better": "a", "worse": "b", "claim": "a beats b"},
        {"better": "b", "worse": "a", "claim": "b beats a"},
        {"better": "a", "worse": "c", "claim": "a beats c"},
        {"better": "a", "worse": "d", "claim": "a beats d"},
        {"similar": ["a", "e"], "tolerance": 0.02, "claim": "a about e"},
        {"similar": ["a", "b"], "tolerance": 0.02, "claim": "a about b"},
    ]}
    rows = [_row("a", 90.0, 0.5, 2), _row("b", 88.0, 0.5, 2), _row("c", 89.6, 0.4, 2),
            _row("d", None), _row("e", 90.9)]
    verdicts = [v["verdict"] for v in reproduce.agreement(table, rows)]
    assert verdicts == ["agrees", "disagrees", "within seed noise", "not run", "agrees",
                        "disagrees"]
    # A single-seed row borrows the repeated row's spread: 90.0 ± 0.5 vs 89.4 once.
    once = [_row("a", 90.0, 0.5, 2), _row("b", 89.4), _row("c", 88.0)]
    assert [v["verdict"] for v in reproduce.agreement(
        {"directions": table["directions"][:3]}, once)] == [
        "within seed noise", "within seed noise", "agrees"]
    # Lower is better (perplexity, error): the better row must be the smaller one.
    low = [_row("a", 5.0, hib=False), _row("b", 6.0, hib=False)]
    assert reproduce.agreement({"directions": table["directions"][:2]}, low)[0][
        "verdict"] == "agrees"


def test_report_and_plots(tmp_path, doc):
    table = doc["tables"]["ulmfit_sample_efficiency"]
    rows = [RowResult(r["id"], r["label"], r["paper"], None, r["source"], r["check"],
                      ours=70.0 - 5 * i, seeds=1, higher_is_better=False, run=r["demo"])
            for i, r in enumerate(table["rows"])]
    markdown = reproduce.write_report(str(tmp_path), "curve", table, "demo", rows,
                                      {"d": ["python", "-m", "pretrain_lm.train"]}, "cmd")
    assert "| ULMFiT (supervised), 100 examples |" in markdown
    assert "python -m pretrain_lm.train" in markdown and "Produced by: `cmd`" in markdown
    with open(tmp_path / "curve.json") as f:
        saved = json.load(f)
    assert [r["id"] for r in saved["rows"]] == [r["id"] for r in table["rows"]]
    assert len(saved["directions"]) == len(table["directions"])
    assert reproduce.plot_table(str(tmp_path), "curve", table, "demo", rows)
    bars = doc["tables"]["transformer_table3"]
    rows = [RowResult(r["id"], r["label"], r["paper"], None, r["source"], r["check"],
                      ours=None if r.get("missing") else 100.0 + i, seeds=1,
                      missing=r.get("missing")) for i, r in enumerate(bars["rows"])]
    markdown = reproduce.write_report(str(tmp_path), "bars", bars, "demo", rows, {}, "cmd")
    assert "not run: the attention has d_k = d_model / heads" in markdown
    for name in ("curve", "bars"):
        reproduce.plot_table(str(tmp_path), name, table if name == "curve" else bars,
                             "demo", rows if name == "bars" else [])
        with open(tmp_path / f"{name}.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _compare_result(root, task, prefix, seed, **splits):
    os.makedirs(root / task, exist_ok=True)
    with open(root / task / f"{prefix}_pooler_seed{seed}.json", "w") as f:
        json.dump({"seconds": 600.0, **splits}, f)


def test_a_comparison_table_sets_ours_beside_the_reference(tmp_path, doc):
    """``--scale=benchmark``: each row reads the per-seed JSONs of finetune_compare, ours
    and the reference, and the report says whether ours is inside the seed spread."""
    table = doc["tables"]["bert_glue_dev"]
    for seed, (ours, hf) in enumerate([(84.0, 85.0), (85.0, 85.5), (86.0, 86.0)]):
        _compare_result(tmp_path, "stsb", "ours", seed, validation={"spearman": ours})
        _compare_result(tmp_path, "stsb", "hf", seed, validation={"spearman": hf})
    _compare_result(tmp_path, "rte", "ours", 0, validation={"accuracy": 50.0})
    _compare_result(tmp_path, "rte", "hf", 0, validation={"accuracy": 60.0})
    _compare_result(tmp_path, "conll2003", "hf", 0, validation={"f1": 89.0},
                    test={"f1": 85.0})
    logged = []
    rows, commands = reproduce.run_comparison(table, "benchmark", dry_run=True,
                                              results_dir=str(tmp_path), log=logged.append)
    by_id = {r.id: r for r in rows}
    stsb, rte = by_id["stsb"], by_id["rte"]
    assert (stsb.ours, stsb.ours_std, stsb.seeds) == (85.0, 1.0, 3)
    assert stsb.reference == pytest.approx(85.5) and stsb.reference_seeds == 3
    assert "within the seed spread" in reproduce.reference_gap(stsb)
    assert "Welch p = 0.50" in reproduce.reference_gap(stsb)
    assert (rte.ours, rte.reference, rte.seeds) == (50.0, 60.0, 1)
    assert reproduce.reference_gap(rte) == "-10.00 (one seed each)"
    assert by_id["conll_test"].reference == 85.0 and by_id["conll_test"].ours is None
    assert by_id["conll_dev"].reference == 89.0
    # The dry run names the runs still missing, with the sweep that makes them.
    assert not any("--task=stsb" in line for line in logged)
    assert any("ours_pooler_seed1" in line and "--task=rte" in line for line in logged)
    markdown = reproduce.write_report(str(tmp_path), "cmp", table, "benchmark", rows,
                                      commands, "cmd")
    assert "| STS-B dev Spearman | 85.80 | 85.00 ± 1.00 (3 seeds) | 85.50 ± 0.50 (3 seeds)" \
        in markdown
    assert "ours 10.0 (cpu), reference 10.0 (cpu)" in markdown
    assert "python -m benchmarks.finetune_compare --task=rte" in markdown
    assert reproduce.plot_table(str(tmp_path), "cmp", table, "benchmark", rows)
    # A comparison row without its task and metric is refused by name.
    broken = copy.deepcopy(doc)
    broken["tables"]["bert_glue_dev"]["rows"][0]["benchmark"] = {"task": "stsb"}
    with pytest.raises(reproduce.TablesError, match="comparison row needs"):
        reproduce.load_tables(_write(tmp_path, broken))
    # Tables without a benchmark entry do not run at that scale.
    with pytest.raises(reproduce.TablesError, match="no benchmark-scale comparison"):
        reproduce.run_table(doc, "taglm_lm_ablation", "benchmark")


def test_unavailable_scales_and_unknown_tables_are_named(doc):
    with pytest.raises(reproduce.TablesError, match="does not run at --scale=full"):
        reproduce.run_table(doc, "taglm_lm_ablation", "full")
    with pytest.raises(reproduce.TablesError, match="--list names them"):
        reproduce.run_table(doc, "table_99", "demo")


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failing_run_stops_with_its_command_and_log(tmp_path, doc, jobs):
    """One run at a time, the first failure stops the table; with ``jobs=2`` both seeds of
    the run start together and both failures are reported."""
    broken = copy.deepcopy(doc)
    broken["run_groups"]["transformer_demo"]["gin_file"] = ["reproduce/no_such_file.gin"]
    with pytest.raises(reproduce.RunFailedError, match=r"no_such_file\.gin") as info:
        reproduce.run_table(broken, "transformer_table2", "demo", root=str(tmp_path),
                            log=lambda _: None, jobs=jobs)
    assert str(info.value).count("reproduce.log") == jobs
    assert os.path.exists(tmp_path / "transformer_demo" / "base-seed_1") == (jobs == 2)


def test_jobs_run_side_by_side_each_once_the_runs_it_needs_exist(tmp_path, doc,
                                                                monkeypatch):
    """``jobs=2`` on the CoVe table: the MT-LSTM (24 jobs wait on it) starts first, two
    jobs run at once, and no job starts before the results it reads exist: a CoVe
    classifier after the MT run, a test evaluation after its own training run."""
    import re
    import threading
    import time

    lock, started, running, peak = threading.Lock(), [], set(), [0]

    def fake_run(command, results):
        text = " ".join(command)
        needs = [f"{d}/results.json" for d in re.findall(r"COVE_DIR=(\S+)", text)]
        if results.endswith("results_test.json"):
            needs.append(os.path.join(os.path.dirname(results), "results.json"))
        with lock:
            assert all(os.path.exists(n) for n in needs), (results, needs)
            started.append(results)
            running.add(results)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.05 if "benchmark_mt" in text else 0.005)
        os.makedirs(os.path.dirname(results), exist_ok=True)
        with open(results, "w") as f:
            json.dump({"eval/accuracy": 0.5}, f)
        with lock:
            running.discard(results)
        return None

    monkeypatch.setattr(reproduce.GroupRunner, "_run", staticmethod(fake_run))
    rows, _ = reproduce.run_table(doc, "cove_classification", "benchmark",
                                  root=str(tmp_path), log=lambda _: None, jobs=2)
    assert started[0].endswith(os.path.join("mt", "results.json"))
    assert len(started) == len(set(started)) == 1 + 16 * 3  # MT + 16 rows x 3 seeds
    assert peak[0] == 2
    assert all(r.ours == 50.0 and r.seeds == 3 for r in rows)
    # Everything exists now: a second call runs nothing.
    started.clear()
    reproduce.run_table(doc, "cove_classification", "benchmark", root=str(tmp_path),
                        log=lambda _: None, jobs=2)
    assert started == []


def test_the_index_lists_each_reference_parity_row_with_its_verdict(tmp_path, doc):
    """Tables judged against a reference implementation (no paper direction) still give
    the index a verdict per row: agrees inside the seed spread, disagrees outside it."""
    rows = [RowResult("a", "row a", 1.0, None, "s", "R", ours=10.0, ours_std=0.5, seeds=3,
                      reference=10.2, reference_std=0.5, reference_seeds=3),
            RowResult("b", "row b", 1.0, None, "s", "R", ours=10.0, ours_std=0.1, seeds=3,
                      reference=12.0, reference_std=0.1, reference_seeds=3),
            RowResult("c", "row c", 1.0, None, "s", "R")]
    with open(tmp_path / "awd_lstm_ptb.json", "w") as f:
        json.dump({"rows": [r.__dict__ for r in rows], "directions": []}, f)
    index = reproduce.write_index(str(tmp_path), doc, "benchmark")
    assert "row a: ours equals the reference implementation's | agrees (-0.20 (within" in index
    assert "row b: ours equals the reference implementation's | disagrees (-2.00 (outside" in index
    assert "row c" not in index


def test_train_subsets_are_nested_and_counted():
    import tasks
    from tasks import glue

    small, large = glue.train_subset(3000, 100), glue.train_subset(3000, 1000)
    assert len(set(small)) == 100 and set(small) <= set(large)
    assert tasks.num_examples("austen_novels_gcide8k", "train_100") == 100
    with pytest.raises(ValueError, match="choose a subset size"):
        glue.train_subset(3000, 3001)


# Tiny budgets per run group for the end-to-end runs.
TINY = {
    "taglm_lm_ablation": ["TRAIN_STEPS = 3"],
    "elmo_table1": ["TRAIN_STEPS = 3"],
    "ulmfit_error_rates": ["TRAIN_STEPS = 3", "EPOCHS = 0.04"],
    "ulmfit_sample_efficiency": ["TRAIN_STEPS = 3", "EPOCHS = 1"],
    "transformer_table2": ["TRAIN_STEPS = 3", "EVAL_STEPS = 2"],
    "transformer_table3": ["TRAIN_STEPS = 3", "EVAL_STEPS = 2"],
    "bert_pretraining_tasks": ["TRAIN_STEPS = 3", "EPOCHS = 0.04", "EVAL_STEPS = 2"],
    "bert_model_size": ["TRAIN_STEPS = 3", "EPOCHS = 0.04", "EVAL_STEPS = 2"],
}


def test_tiny_budgets_cover_every_table_that_runs_at_demo_scale(doc):
    runnable = {n for n, t in doc["tables"].items() if "unavailable" not in t["demo"]}
    assert runnable == set(TINY)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_each_demo_table_runs_end_to_end_on_tiny_budgets(tmp_path_factory, name):
    root = str(tmp_path_factory.getbasetemp() / "runs")  # shared: tables share runs
    out = str(tmp_path_factory.mktemp("results"))
    args = [sys.executable, "-m", "pretrain_lm.tools.reproduce", name, "--scale=demo",
            f"--model_dir={root}", f"--results_dir={out}", "--decode_flag=max_examples=16",
            *[f"--gin_bindings={b}" for b in TINY[name]]]
    done = subprocess.run(args, capture_output=True, text=True, cwd=reproduce.ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(os.path.join(out, "demo", f"{name}.json")) as f:
        report = json.load(f)
    table = reproduce.load_tables()["tables"][name]
    assert [r["id"] for r in report["rows"]] == [r["id"] for r in table["rows"]]
    for row, spec in zip(report["rows"], table["rows"], strict=True):
        assert (row["ours"] is not None) == (spec.get("demo") is not None), row["id"]
    assert {v["verdict"] for v in report["directions"]} <= {
        "agrees", "disagrees", "within seed noise", "not run"}
    assert os.path.getsize(os.path.join(out, "demo", f"{name}.png")) > 1000
    if table["demo"].get("layer_weights"):
        assert os.path.exists(os.path.join(out, "demo", f"{name}_layer_weights.png"))
    with open(os.path.join(out, "demo", f"{name}.md")) as f:
        assert f.read().startswith(f"# {table['title']}")


def test_full_scale_names_the_datasets_to_prepare_before_any_run(doc, monkeypatch):
    def no_training(self, run_id, _stack=()):
        pytest.skip("WMT14 is prepared on this machine: nothing to check")

    monkeypatch.setattr(reproduce.GroupRunner, "plan", no_training)
    with pytest.raises(reproduce.TablesError, match=r"not prepared(.|\n)*tfds build wmt14"):
        reproduce.run_table(doc, "transformer_table2", "full", log=lambda _: None)


def test_a_run_group_table_sets_its_reference_runs_beside_ours(tmp_path, doc):
    """``reference_results``: each row's reference seeds (a reference implementation's
    own JSONs) become the reference column, beside ours and the paper."""
    broken = copy.deepcopy(doc)
    spec = broken["tables"]["ner_conll2003"]["benchmark"]
    spec["reference_results"] = str(tmp_path / "reference")
    row = next(r for r in broken["tables"]["ner_conll2003"]["rows"] if "reference" in
               (r["benchmark"] if isinstance(r["benchmark"], dict) else {}))
    folder = tmp_path / "reference" / row["benchmark"]["reference"]
    os.makedirs(folder)
    for seed, f1 in enumerate([0.90, 0.88]):
        with open(folder / f"seed_{seed}.json", "w") as f:
            json.dump({"test_entity_f1": f1}, f)
    rows, _ = reproduce.run_table(broken, "ner_conll2003", "benchmark",
                                  root=str(tmp_path / "runs"), report_only=True)
    got = next(r for r in rows if r.id == row["id"])
    assert got.reference == pytest.approx(89.0) and got.reference_seeds == 2
    assert got.ours is None  # no run of ours under this root
    markdown = reproduce.write_report(str(tmp_path), "ner", broken["tables"]["ner_conll2003"],
                                      "benchmark", rows, {}, "cmd")
    assert "| reference |" in markdown and "89.00 ± 1.41 (2 seeds)" in markdown


def test_each_row_can_read_its_own_metric_of_the_reference_runs(tmp_path, doc):
    """``reference_metric`` on a row overrides the table's: the PTB table's validation
    and test rows read two keys of the same reference JSONs."""
    table = copy.deepcopy(doc["tables"]["awd_lstm_ptb"])
    table["benchmark"]["reference_results"] = str(tmp_path / "reference")
    folder = tmp_path / "reference" / "bench_ptb_lm_words"
    os.makedirs(folder)
    for seed, (valid, test) in enumerate([(120.0, 115.0), (122.0, 117.0)]):
        with open(folder / f"seed_{seed}.json", "w") as f:
            json.dump({"validation_perplexity": valid, "test_perplexity": test}, f)
    broken = {**doc, "tables": {**doc["tables"], "awd_lstm_ptb": table}}
    rows, _ = reproduce.run_table(broken, "awd_lstm_ptb", "benchmark",
                                  root=str(tmp_path / "runs"), report_only=True)
    by_id = {r.id: r for r in rows}
    assert by_id["validation"].reference == pytest.approx(121.0)
    assert by_id["test"].reference == pytest.approx(116.0)
    assert not by_id["test"].higher_is_better


TINY_BENCHMARK = {
    "ner_conll2003": ["TRAIN_STEPS = 3", "EVAL_STEPS = 2"],
    "awd_lstm_ptb": ["TRAIN_STEPS = 3", "EVAL_STEPS = 2", "BATCH_SIZE = 8"],
    "ulmfit_trec6": ["TRAIN_STEPS = 3", "EPOCHS = 0.02", "EVAL_STEPS = 2", "BATCH_SIZE = 8"],
    "cove_classification": ["TRAIN_STEPS = 3", "EVAL_EVERY = 3", "EVAL_STEPS = 2",
                            "BATCH_SIZE = 8"],
}


def test_tiny_budgets_cover_every_run_group_table_at_benchmark_scale(doc):
    grouped = {n for n, t in doc["tables"].items() if "group" in t.get("benchmark", {})}
    assert grouped == set(TINY_BENCHMARK)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY_BENCHMARK))
def test_each_benchmark_table_runs_end_to_end_on_tiny_budgets(tmp_path, name):
    """The real benchmark files (``$PRETRAIN_LM_DATA_DIR``): every run of the table, its
    test-split evaluations included, then the report with the reference column."""
    from tasks import benchmark_data as bd

    if not os.path.isdir(os.environ.get(bd.ENV_VAR) or "/nonexistent"):
        if os.environ.get("CI"):
            pytest.fail(f"${bd.ENV_VAR} must name the benchmark files under CI")
        pytest.skip(f"${bd.ENV_VAR} is not set")
    out = str(tmp_path / "results")
    args = [sys.executable, "-m", "pretrain_lm.tools.reproduce", name, "--scale=benchmark",
            f"--model_dir={tmp_path / 'runs'}", f"--results_dir={out}",
            *[f"--gin_bindings={b}" for b in TINY_BENCHMARK[name]]]
    done = subprocess.run(args, capture_output=True, text=True, cwd=reproduce.ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(os.path.join(out, "benchmark", f"{name}.json")) as f:
        report = json.load(f)
    table = reproduce.load_tables()["tables"][name]
    for row, spec in zip(report["rows"], table["rows"], strict=True):
        assert (row["ours"] is not None) == (spec.get("benchmark") is not None), row["id"]
