r"""Reproduce the papers' tables: our numbers beside the papers', with plots.

    python -m pretrain_lm.tools.reproduce --list
    python -m pretrain_lm.tools.reproduce TABLE [TABLE ...] | --all  [--scale=demo|benchmark|full] \
      [--model_dir=ROOT] [--results_dir=results/reproduce] [--jobs=N] [--dry_run] [--gin.X=V ...]

Each table lives in ``data/paper_tables.json``: its rows carry the paper's number with its
source (paper, table, row; ``check`` says how it was verified: V-code / V-text / V-2src, or
R = not yet checked against the PDF) and, per scale, the run that measures our side. The
runs are gin runs of one *run group* (a root folder of model dirs): ``pretrain_lm.train``
with the group's gin files plus the run's bindings, ``--results_json`` beside the
checkpoints, ``pretrain_lm.tools.ensemble`` over other runs, ``pretrain_lm.infer`` of a
trained run (BLEU), or a finished run evaluated on another split (``evaluate``: the test
split's ``results_test.json``). A binding ``'{run:ID}'`` is the
model dir of run ID of the group, which then runs first (ULMFiT's three stages, the biLM
under TagLM, BERT pre-training under fine-tuning). Runs with ``seeds`` run once per seed
(``SEED`` macro); a row's value is then their mean ± sample standard deviation.

A run that already has its results is not run again, so rerunning a table only fills in
what is missing, and tables that share a group (TagLM and ELMo, the two Transformer tables)
share runs. ``--gin.X=V`` is added to every training run and ``--decode_flag=NAME=V`` to
every decode run (e.g. tiny budgets: ``--gin.TRAIN_STEPS=3 --decode_flag=max_examples=16``).

Written to ``RESULTS_DIR/SCALE/``: ``TABLE.md`` (paper | ours | run, the exact commands,
and for each ablation direction the paper states whether ours agrees, disagrees or is
within seed noise), ``TABLE.json`` and ``TABLE*.png`` (paper and ours side by side, the
ULMFiT sample-efficiency curve, ELMo's learned layer weights). At demo scale the absolute
numbers are not the papers' (other data, tiny models): the directions are what to compare.
``--scale benchmark`` holds comparisons on the real benchmark files
(``PRETRAIN_LM_DATA_DIR``): a real pretrained checkpoint fine-tuned by this project and by
the reference implementation (``benchmarks.finetune_compare``), both columns beside the
paper's. ``--scale full`` holds the paper-setting runs (for a pod slice; the real datasets must be
prepared with ``tfds build``: a run without them stops with the command to run).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLES_FILE = os.path.join(ROOT, "data", "paper_tables.json")
SCALES = ("demo", "full", "benchmark")
# A table without a ``benchmark`` entry does not run at that scale.
NO_BENCHMARK = {"unavailable": "no benchmark-scale comparison is defined for this table"}
# Where ``benchmarks.finetune_compare`` keeps one JSON per fine-tuning run.
FINETUNE_RESULTS = os.path.join(ROOT, "results", "benchmark", "finetune")
CHECKS = ("V-code", "V-text", "V-2src", "R")
_RUN_REF = re.compile(r"\{run:([A-Za-z0-9_.-]+)\}")


class TablesError(ValueError):
    """``data/paper_tables.json`` is malformed; the message names the entry."""


class RunFailedError(RuntimeError):
    """A run of a table failed; the message names the command and its log."""


# ---------------------------------------------------------------------------------------
# The data file.


def load_tables(path: str = TABLES_FILE) -> dict[str, Any]:
    """Reads and checks the data file: every row has a label, a paper number (or null), a
    source and a check mark; every run a row or a binding names exists in its group;
    every direction names rows of its table."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    groups, tables = doc.get("run_groups"), doc.get("tables")
    if not isinstance(groups, dict) or not isinstance(tables, dict):
        raise TablesError(f"{path}: expected top-level 'run_groups' and 'tables' objects.")
    for name, group in groups.items():
        if group.get("scale") not in SCALES or not group.get("root"):
            raise TablesError(f"{path}: run group {name!r} needs 'scale' (one of {SCALES}) "
                              "and 'root'.")
        for run_id, run in group.get("runs", {}).items():
            for ref in _references(run, run_id):
                if ref not in group["runs"]:
                    raise TablesError(f"{path}: run {name}/{run_id} refers to run {ref!r}, "
                                      f"which group {name!r} does not define.")
    for name, table in tables.items():
        for key in ("title", "paper", "paper_metric", "rows", "demo", "full"):
            if key not in table:
                raise TablesError(f"{path}: table {name!r} has no {key!r}.")
        ids = [row.get("id") for row in table["rows"]]
        if len(set(ids)) != len(ids):
            raise TablesError(f"{path}: table {name!r} repeats a row id: {ids}.")
        for row in table["rows"]:
            where = f"{path}: table {name!r} row {row.get('id')!r}"
            if not row.get("label") or not row.get("source"):
                raise TablesError(f"{where} needs a 'label' and a 'source'.")
            if row.get("check") not in CHECKS:
                raise TablesError(f"{where}: 'check' must be one of {CHECKS}.")
            if "paper" not in row or (row["paper"] is not None
                                      and not isinstance(row["paper"], int | float)):
                raise TablesError(f"{where}: 'paper' must be a number, or null where the "
                                  "paper reports none.")
            for scale in SCALES:
                spec = scale_spec(table, scale)
                if row.get(scale) is None or "unavailable" in spec:
                    continue
                if "compare" in spec:
                    if spec["compare"] not in COMPARISONS:
                        raise TablesError(f"{path}: table {name!r}: compare must be one of "
                                          f"{sorted(COMPARISONS)}.")
                    if not isinstance(row[scale], dict) or not {"task", "metric"} <= set(
                            row[scale]):
                        raise TablesError(f"{where}: a {scale} comparison row needs "
                                          "{'task': ..., 'metric': ...}.")
                    continue
                group = groups.get(spec.get("group"))
                if group is None or group["scale"] != scale:
                    raise TablesError(f"{path}: table {name!r} {scale} names run group "
                                      f"{spec.get('group')!r}, not a {scale}-scale group.")
                run_id = _row_run(row, scale)["run"]
                if run_id not in group["runs"]:
                    raise TablesError(f"{where}: {scale} run {run_id!r} is not in group "
                                      f"{spec['group']!r}.")
            if all(row.get(s) is None for s in SCALES) and not row.get("missing") and not all(
                    "unavailable" in scale_spec(table, s) for s in SCALES):
                raise TablesError(f"{where} has no run at any scale: say why ('missing').")
        for direction in table.get("directions", []):
            named = direction.get("similar") or [direction.get("better"),
                                                 direction.get("worse")]
            if any(n not in ids for n in named) or not direction.get("claim"):
                raise TablesError(f"{path}: table {name!r} direction {direction} must name "
                                  f"two of its rows {ids} and give a 'claim'.")
    return doc


def scale_spec(table: Mapping[str, Any], scale: str) -> Mapping[str, Any]:
    """A table's entry for ``scale`` (``benchmark`` is optional)."""
    return table.get(scale, NO_BENCHMARK) if scale == "benchmark" else table[scale]


def _references(run: Mapping[str, Any], run_id: str) -> list[str]:
    refs = list(run.get("members", [])) + ([run["of"]] if "of" in run else [])
    for value in run.get("bindings", {}).values():
        if isinstance(value, str):
            refs += _RUN_REF.findall(value)
    if run_id in refs:
        raise TablesError(f"run {run_id!r} refers to itself.")
    return refs


def _row_run(row: Mapping[str, Any], scale: str) -> dict[str, Any]:
    """A row's run at ``scale`` as ``{"run": id, "metric": ..., "factor": ...}``."""
    spec = row[scale]
    return {"run": spec} if isinstance(spec, str) else dict(spec)


def gin_literal(value: Any) -> str:
    """A JSON binding value as gin text: strings are gin already (``"'none'"``)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return repr(value)
    raise TablesError(f"binding value {value!r}: use a number, true/false, null or gin text.")


def gin_flag(binding: str) -> str:
    """``"KEY = VALUE"`` as the t5x-style flag ``--gin.KEY=VALUE`` that
    ``gin_utils.rewrite_gin_args`` turns back into it; a quoted string that needs no
    quotes on the command line loses them (``'train_100'`` -> ``train_100``)."""
    import ast

    key, _, value = (part.strip() for part in binding.partition("="))
    if len(value) > 1 and value[0] == value[-1] == "'" and re.fullmatch(r"[\w./-]+", value[1:-1]):
        bare = value[1:-1]
        try:
            ast.literal_eval(bare)
        except (ValueError, SyntaxError):
            value = bare  # reads back as the same string
    return f"--gin.{key}={value}"


def shell_command(command: Sequence[str]) -> str:
    """A command line to paste into a shell."""
    return " ".join(shlex.quote(c) for c in command)


def list_tables(doc: Mapping[str, Any]) -> str:
    """One line per table: name, title and which scales can run."""
    lines = []
    for name, table in doc["tables"].items():
        scales = [s for s in SCALES if "unavailable" not in scale_spec(table, s)]
        lines.append(f"{name:26s} {table['title']}  [runs at: {', '.join(scales) or 'none'}]")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Runs.


@dataclasses.dataclass
class _Job:
    """One command of a run group: ``results`` is the file it writes (its mark of being
    done); ``needs``, the results files of the queued jobs it must wait for."""

    command: list[str]
    results: str
    needs: set[str]


@dataclasses.dataclass
class GroupRunner:
    """Runs (or finds) the runs of one group under ``root``.

    Args:
      name: the group's name in the data file; ``group`` its entry.
      root: folder of the group's model dirs (default: the group's ``root``).
      extra_bindings: gin bindings added last to every training run.
      decode_flags: ``pretrain_lm.infer`` flags added to every decode run
        (``max_examples=50``: tiny budgets).
      dry_run: print the commands, run nothing.
      log: where progress lines go.
      jobs: how many jobs (model dirs, evaluations, ensembles) run at the same time; a
        job starts once the runs it refers to have finished.
    """

    name: str
    group: Mapping[str, Any]
    root: str
    extra_bindings: Sequence[str] = ()
    dry_run: bool = False
    log: Callable[[str], None] = print
    decode_flags: Sequence[str] = ()
    jobs: int = 1
    commands: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    _planned: set[str] = dataclasses.field(default_factory=set)
    _pending: dict[str, _Job] = dataclasses.field(default_factory=dict)

    def spec(self, run_id: str) -> Mapping[str, Any]:
        return self.group["runs"][run_id]

    def model_dirs(self, run_id: str) -> list[str]:
        """The run's model dir, one per seed for a seeded run (a ``decode`` run writes
        into the model dirs of the run it decodes, an ``evaluate`` run into those of the
        run it evaluates)."""
        if self.spec(run_id).get("kind") in ("decode", "evaluate"):
            return self.model_dirs(self.spec(run_id)["of"])
        base = os.path.join(self.root, run_id)
        seeds = self.spec(run_id).get("seeds")
        return [f"{base}-seed_{s}" for s in seeds] if seeds else [base]

    def _bindings(self, run_id: str, seed: int | None, model_dir: str) -> list[str]:
        values = {**self.group.get("bindings", {}), **self.spec(run_id).get("bindings", {})}
        out = []
        for key, value in values.items():
            text = gin_literal(value)
            text = _RUN_REF.sub(lambda m: self.model_dirs(m.group(1))[0], text)
            out.append(f"{key} = {text}")
        if seed is not None:
            out.append(f"{self.group.get('seed_macro', 'SEED')} = {seed}")
        out.append(f"MODEL_DIR = {model_dir!r}")
        return out + list(self.extra_bindings)

    def command(self, run_id: str, index: int = 0) -> list[str]:
        """The exact command line that makes the ``index``-th model dir of ``run_id``."""
        spec = self.spec(run_id)
        model_dir = self.model_dirs(run_id)[index]
        if spec.get("kind") == "ensemble":
            members = [self.model_dirs(m)[0] for m in spec["members"]]
            return ["python", "-m", "pretrain_lm.tools.ensemble",
                    *[f"--model_dir={m}" for m in members],
                    f"--split={spec.get('split', 'validation')}", f"--output_dir={model_dir}"]
        if spec.get("kind") == "evaluate":  # the finished run relaunched on another split
            split = spec.get("split", "test")
            train = self.command(spec["of"], index)[:-1]
            return [*train, gin_flag(f"eval/data.DataConfig.split = {split!r}"),
                    f"--results_json={self.results_path(run_id, model_dir)}"]
        if spec.get("kind") == "decode":  # the trained run's own configuration
            train = self.command(spec["of"], index)[3:-1]
            return ["python", "-m", "pretrain_lm.infer", *train,
                    f"--split={spec.get('split', 'validation')}",
                    *[f"--{k}={v}" for k, v in spec.get("flags", {}).items()],
                    *[f"--{f}" for f in self.decode_flags]]
        gin_files = spec.get("gin_file", self.group.get("gin_file"))
        if not gin_files:
            raise TablesError(f"run {self.name}/{run_id} has no gin_file (nor its group).")
        seeds = spec.get("seeds")
        return ["python", "-m", "pretrain_lm.train",
                *[f"--gin_file={g}" for g in gin_files],
                *[gin_flag(b) for b in self._bindings(
                    run_id, seeds[index] if seeds else None, model_dir)],
                f"--results_json={os.path.join(model_dir, 'results.json')}"]

    def results_path(self, run_id: str, model_dir: str) -> str:
        spec = self.spec(run_id)
        if spec.get("kind") == "ensemble":
            return os.path.join(model_dir, f"ensemble_{spec.get('split', 'validation')}.json")
        if spec.get("kind") == "evaluate":
            return os.path.join(model_dir, f"results_{spec.get('split', 'test')}.json")
        if spec.get("kind") == "decode":
            return os.path.join(model_dir, f"decode_{spec.get('split', 'validation')}",
                                "bleu.json")
        return os.path.join(model_dir, "results.json")

    def plan(self, run_id: str, _stack: tuple[str, ...] = ()) -> None:
        """Queues every model dir of ``run_id`` (and of the runs it refers to, first) whose
        results do not exist yet; ``run_pending`` runs the queue."""
        if run_id in _stack:
            raise TablesError(f"run group {self.name}: runs refer to each other in a circle: "
                              f"{' -> '.join((*_stack, run_id))}.")
        if run_id in self._planned:
            return
        refs = _references(self.spec(run_id), run_id)
        for ref in refs:
            self.plan(ref, (*_stack, run_id))
        self._planned.add(run_id)
        needs = {self.results_path(ref, d) for ref in refs for d in self.model_dirs(ref)}
        for index, model_dir in enumerate(self.model_dirs(run_id)):
            command = self.command(run_id, index)
            self.commands[model_dir] = command
            results = self.results_path(run_id, model_dir)
            if os.path.exists(results):
                continue
            self.log(f"[reproduce] {'would run' if self.dry_run else 'queued'}: "
                     f"{shell_command(command)}")
            self._pending[results] = _Job(command, results, needs & set(self._pending))

    def run_pending(self) -> None:
        """Runs the queued jobs, ``jobs`` at a time, each once the runs it needs have
        finished; the job most others wait on (e.g. a pretraining run) starts first. The
        first failure starts nothing new; the running jobs finish, and every failure is
        raised together."""
        if self.dry_run or not self._pending:
            return
        queue = sorted(self._pending.values(), key=lambda j: -self._waiting_on(j.results))
        finished: set[str] = set()
        failures: list[str] = []
        running: dict[concurrent.futures.Future, _Job] = {}
        with concurrent.futures.ThreadPoolExecutor(max(self.jobs, 1)) as pool:
            while running or (queue and not failures):
                for job in [j for j in queue if j.needs <= finished] if not failures else []:
                    if len(running) >= max(self.jobs, 1):
                        break
                    queue.remove(job)
                    self.log(f"[reproduce] running: {shell_command(job.command)}")
                    running[pool.submit(self._run, job.command, job.results)] = job
                if not running:  # what is left waits on a run that never finished
                    break
                done, _ = concurrent.futures.wait(
                    running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    failure = future.result()
                    if failure:
                        failures.append(failure)
                    else:
                        finished.add(job.results)
                        del self._pending[job.results]
        if failures:
            raise RunFailedError("\n\n".join(failures))

    def _waiting_on(self, results: str) -> int:
        """How many queued jobs wait (directly or not) on the job that writes ``results``."""
        waiting, todo = set(), [results]
        while todo:
            done = todo.pop()
            for job in self._pending.values():
                if done in job.needs and job.results not in waiting:
                    waiting.add(job.results)
                    todo.append(job.results)
        return len(waiting)

    @staticmethod
    def _run(command: Sequence[str], results: str) -> str | None:
        """Runs one command, logging beside its results (``reproduce.log`` for a training
        run, ``reproduce_<results name>.log`` for the others); on failure, what to show."""
        folder, name = os.path.split(results)
        os.makedirs(folder, exist_ok=True)
        stem = os.path.splitext(name)[0]
        log_path = os.path.join(folder, "reproduce.log" if stem == "results"
                                else f"reproduce_{stem}.log")
        with open(log_path, "w") as log:
            code = subprocess.run([sys.executable, *command[1:]], stdout=log,
                                  stderr=subprocess.STDOUT, cwd=ROOT).returncode
        if not code:
            return None
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-15:])
        return (f"{shell_command(command)}\nfailed with exit code {code}; its log is "
                f"{log_path}:\n{tail}")

    def value(self, run_id: str, metric: str) -> list[float] | None:
        """The metric of every seed of ``run_id`` (None where results are missing)."""
        values = []
        for model_dir in self.model_dirs(run_id):
            path = self.results_path(run_id, model_dir)
            if not os.path.exists(path):
                return None
            with open(path) as f:
                results = json.load(f)
            if self.spec(run_id).get("kind") == "ensemble":
                results = self._ensemble_metrics(run_id, results)
            if metric not in results:
                raise TablesError(f"{path} has no {metric!r}; it has {sorted(results)}.")
            values.append(float(results[metric]))
        return values

    def _ensemble_metrics(self, run_id: str, results: Mapping[str, Any]) -> dict[str, float]:
        """``pretrain_lm.tools.ensemble``'s rows as ``{"<member>/<metric>": v,
        "ensemble/...": v}``."""
        names = [*self.spec(run_id)["members"], "ensemble"]
        return {f"{name}/{k}": v for name, row in zip(names, results["runs"], strict=True)
                for k, v in row.items() if isinstance(v, int | float)}


# ---------------------------------------------------------------------------------------
# Tables.


@dataclasses.dataclass
class RowResult:
    """One row: the paper's number and ours (mean, std over seeds, seed count)."""

    id: str
    label: str
    paper: float | None
    paper_std: float | None
    source: str
    check: str
    ours: float | None = None
    ours_std: float | None = None
    seeds: int = 0
    higher_is_better: bool = True
    run: str | None = None
    missing: str | None = None
    reference: float | None = None  # the reference implementation's run (benchmark scale)
    reference_std: float | None = None
    reference_seeds: int = 0
    minutes: str | None = None  # wall minutes per run, and where they ran (benchmark scale)


def group_root(group: Mapping[str, Any], name: str, root: str | None) -> str:
    """Where a group's runs live: ``ROOT/<group>`` under ``--model_dir=ROOT``, else the
    group's own ``root``."""
    return os.path.join(root, name) if root else group["root"]


def run_table(doc: Mapping[str, Any], name: str, scale: str = "demo", *,
              root: str | None = None, extra_bindings: Sequence[str] = (),
              decode_flags: Sequence[str] = (), dry_run: bool = False,
              report_only: bool = False, log: Callable[[str], None] = print,
              jobs: int = 1) -> tuple[list[RowResult], dict[str, list[str]]]:
    """Makes every run the table's rows need at ``scale`` (``report_only``: none, the
    rows report what exists); returns the rows and the command of every model dir
    involved."""
    if name not in doc["tables"]:
        raise TablesError(f"no table {name!r}; --list names them: {sorted(doc['tables'])}.")
    table = doc["tables"][name]
    spec = scale_spec(table, scale)
    if "unavailable" in spec:
        raise TablesError(f"table {name!r} does not run at --scale={scale}: "
                          f"{spec['unavailable']}.")
    if "compare" in spec:
        return run_comparison(table, scale, dry_run=dry_run, report_only=report_only, log=log)
    group = doc["run_groups"][spec["group"]]
    runner = GroupRunner(spec["group"], group, group_root(group, spec["group"], root),
                         extra_bindings, dry_run, log, decode_flags, jobs)
    if scale == "full" and not (dry_run or report_only):
        check_data(runner, [_row_run(r, scale)["run"] for r in table["rows"]
                            if r.get(scale) is not None])
    if not report_only:  # every run the rows need, the independent ones side by side
        for row in table["rows"]:
            if row.get(scale) is not None:
                runner.plan(_row_run(row, scale)["run"])
        runner.run_pending()
    rows = []
    for row in table["rows"]:
        hib = row.get("higher_is_better", spec.get("higher_is_better",
                                                   table.get("higher_is_better", True)))
        result = RowResult(row["id"], row["label"], row["paper"], row.get("paper_std"),
                           row["source"], row["check"], higher_is_better=hib)
        if row.get(scale) is None:
            result.missing = row.get("missing", f"no run at {scale} scale")
            rows.append(result)
            continue
        ref = _row_run(row, scale)
        values = runner.value(ref["run"], ref.get("metric", spec.get("metric")))
        result.run = ref["run"]
        factor = ref.get("factor", spec.get("factor", 1))
        if values:
            values = [v * factor for v in values]
            result.ours = statistics.fmean(values)
            result.ours_std = statistics.stdev(values) if len(values) > 1 else None
            result.seeds = len(values)
        if ref.get("reference"):
            reference = reference_values(spec, ref["reference"],
                                         ref.get("reference_metric"))
            if reference:
                reference = [v * factor for v in reference]
                result.reference = statistics.fmean(reference)
                result.reference_std = (statistics.stdev(reference) if len(reference) > 1
                                        else None)
                result.reference_seeds = len(reference)
        rows.append(result)
    return rows, runner.commands


def reference_values(spec: Mapping[str, Any], name: str, metric: str | None = None
                     ) -> list[float]:
    """A run group table's reference runs for one row: ``metric`` (default
    ``spec["reference_metric"]``) of every
    ``ROOT/<spec["reference_results"]>/<name>/seed_*.json`` (a reference implementation's
    own script writes them, e.g. ``benchmarks.tagger_reference``)."""
    import glob

    paths = sorted(glob.glob(os.path.join(ROOT, spec["reference_results"], name,
                                          "seed_*.json")))
    values = []
    for path in paths:
        with open(path) as f:
            values.append(float(json.load(f)[metric or spec["reference_metric"]]))
    return values


def run_comparison(table: Mapping[str, Any], scale: str, *, dry_run: bool = False,
                   report_only: bool = False, results_dir: str | None = None,
                   log: Callable[[str], None] = print
                   ) -> tuple[list[RowResult], dict[str, list[str]]]:
    """A ``compare`` table: each row measured by this project and by a reference
    implementation in the same run, from the result files of a benchmark script (runs
    whose file exists are not run again). ``compare`` names the script:

    * ``finetune``: ``benchmarks.finetune_compare`` (ours and HuggingFace fine-tune the
      same checkpoint on the same rows with the same recipe and seeds);
    * ``word_vectors``: ``benchmarks.word_vectors`` (our word-similarity and analogy
      evaluators and gensim's, on the same vectors).

    Returns the rows (ours, the reference, the paper) and the command of each task."""
    spec = scale_spec(table, scale)
    kind = COMPARISONS[spec["compare"]]
    results_dir = results_dir or kind.results_dir
    commands: dict[str, list[str]] = {}
    rows = []
    for row in table["rows"]:
        result = RowResult(row["id"], row["label"], row["paper"], row.get("paper_std"),
                           row["source"], row["check"],
                           higher_is_better=table.get("higher_is_better", True))
        ref = row.get(scale)
        if ref is None:
            result.missing = row.get("missing", f"no run at {scale} scale")
            rows.append(result)
            continue
        task = ref["task"]
        command, missing = kind.command(spec, ref, results_dir)
        if task not in commands:
            commands[task] = command
            if not missing:
                pass
            elif dry_run:
                log(f"[reproduce] would run {', '.join(missing)}: {shell_command(command)}")
            elif not report_only:
                log(f"[reproduce] running: {shell_command(command)}")
                done = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, check=False)
                if done.returncode:
                    raise RunFailedError(f"{shell_command(command)} failed (exit "
                                         f"{done.returncode}); the logs are under "
                                         f"{results_dir}.")
        result.run = kind.run_name(spec, ref)
        timings = []
        for side, measured in kind.sides(spec, ref, results_dir).items():
            if not measured:
                continue
            values = [value * ref.get("factor", 1) for value, _, _ in measured]
            setattr(result, side, statistics.fmean(values))
            setattr(result, f"{side}_std", statistics.stdev(values) if len(values) > 1 else None)
            setattr(result, "seeds" if side == "ours" else "reference_seeds", len(values))
            minutes = statistics.fmean(seconds for _, seconds, _ in measured) / 60
            devices = "/".join(sorted({device for _, _, device in measured}))
            timings.append(f"{side} {minutes:.1f} ({devices})")
        result.minutes = ", ".join(timings) or None
        rows.append(result)
    return rows, commands


Measured = list[tuple[float, float, str]]  # (value, seconds, device) per run


class FinetuneComparison:
    """``benchmarks.finetune_compare``: one JSON per implementation, pooling and seed."""

    results_dir = FINETUNE_RESULTS

    @staticmethod
    def _path(results_dir: str, task: str, prefix: str, pooling: str, seed: int) -> str:
        return os.path.join(results_dir, task, f"{prefix}_{pooling}_seed{seed}.json")

    @classmethod
    def command(cls, spec: Mapping[str, Any], ref: Mapping[str, Any], results_dir: str
                ) -> tuple[list[str], list[str]]:
        task, seeds = ref["task"], ref.get("seeds", spec["seeds"])
        settings = {**spec.get("flags", {}), **ref.get("flags", {})}
        command = ["python", "-m", "benchmarks.finetune_compare", f"--task={task}",
                   f"--poolings={spec['pooling']}", f"--seeds={','.join(map(str, seeds))}",
                   *(f"--{k}={v}" for k, v in settings.items()),
                   *([f"--results_dir={results_dir}"] if results_dir != cls.results_dir
                     else [])]
        missing = [f"{prefix}_{spec['pooling']}_seed{seed}" for seed in seeds
                   for prefix in ("ours", "hf") if not os.path.exists(
                       cls._path(results_dir, task, prefix, spec["pooling"], seed))]
        return command, missing

    @staticmethod
    def run_name(spec: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
        return f"{ref['task']} ({spec['pooling']})"

    @classmethod
    def sides(cls, spec: Mapping[str, Any], ref: Mapping[str, Any], results_dir: str
              ) -> dict[str, Measured]:
        out: dict[str, Measured] = {}
        for prefix, side in (("ours", "ours"), ("hf", "reference")):
            out[side] = []
            for seed in ref.get("seeds", spec["seeds"]):
                path = cls._path(results_dir, ref["task"], prefix, spec["pooling"], seed)
                if os.path.exists(path):
                    with open(path) as f:
                        run = json.load(f)
                    out[side].append((float(run[ref.get("split", "validation")][ref["metric"]]),
                                      float(run["seconds"]), run.get("device", "cpu")))
        return out


class WordVectorComparison:
    """``benchmarks.word_vectors``: one JSON per vector source, ours and gensim's figures."""

    results_dir = os.path.join(ROOT, "results", "benchmark", "word_vectors")

    @classmethod
    def command(cls, spec: Mapping[str, Any], ref: Mapping[str, Any], results_dir: str
                ) -> tuple[list[str], list[str]]:
        command = ["python", "-m", "benchmarks.word_vectors", f"--vectors={ref['task']}",
                   *([f"--results_dir={results_dir}"] if results_dir != cls.results_dir
                     else [])]
        done = os.path.exists(os.path.join(results_dir, f"{ref['task']}.json"))
        return command, [] if done else [ref["task"]]

    @staticmethod
    def run_name(spec: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
        return ref["task"]

    @staticmethod
    def sides(spec: Mapping[str, Any], ref: Mapping[str, Any], results_dir: str
              ) -> dict[str, Measured]:
        path = os.path.join(results_dir, f"{ref['task']}.json")
        if not os.path.exists(path):
            return {}
        with open(path) as f:
            run = json.load(f)
        return {side: [(float(run[key][ref["metric"]]), float(run["seconds"]), "cpu")]
                for side, key in (("ours", "ours"), ("reference", "gensim"))}


COMPARISONS = {"finetune": FinetuneComparison, "word_vectors": WordVectorComparison}


def check_data(runner: GroupRunner, run_ids: Sequence[str]) -> None:
    """Before any paper-scale run starts: every TFDS dataset the runs (and the runs they
    refer to) read is prepared; otherwise one error lists the ``tfds build`` commands."""
    import gin

    import tasks
    from pretrain_lm import gin_utils
    from tasks.pretraining import DatasetNotPreparedError

    seen, missing, todo = set(), {}, list(run_ids)
    while todo:
        run_id = todo.pop()
        if run_id in seen:
            continue
        seen.add(run_id)
        todo += _references(runner.spec(run_id), run_id)
        if runner.spec(run_id).get("kind") == "ensemble":
            continue
        command = gin_utils.rewrite_gin_args(runner.command(run_id))
        gin.clear_config()
        try:
            gin_utils.parse([c.split("=", 1)[1] for c in command if c.startswith("--gin_file=")],
                            [c.split("=", 1)[1] for c in command
                             if c.startswith("--gin_bindings=")])
            task = gin_utils.macro("MIXTURE_OR_TASK_NAME")
        finally:
            gin.clear_config()
        try:
            tasks.check_prepared(task)
        except DatasetNotPreparedError as e:
            missing.setdefault(str(e), []).append(run_id)
    if missing:
        raise TablesError("the paper-scale runs need data that is not prepared:\n" + "\n".join(
            f"runs {sorted(ids)}: {message}" for message, ids in missing.items()))


def agreement(table: Mapping[str, Any], rows: Sequence[RowResult]) -> list[dict[str, Any]]:
    """For each direction of the table: the paper's numbers, ours, and a verdict:
    ``agrees``, ``disagrees``, ``within seed noise`` (the gap is below the combined seed
    standard deviation; a row run with one seed takes the other row's spread) or
    ``not run``. Rows without repeats on either side are judged by the sign alone."""
    by_id = {r.id: r for r in rows}
    verdicts = []
    for direction in table.get("directions", []):
        if "similar" in direction:
            a, b = (by_id[i] for i in direction["similar"])
        else:
            a, b = by_id[direction["better"]], by_id[direction["worse"]]
        out = {"claim": direction["claim"], "rows": [a.id, b.id],
               "paper": [a.paper, b.paper], "ours": [a.ours, b.ours]}
        if a.ours is None or b.ours is None:
            out["verdict"] = "not run"
        elif "similar" in direction:
            tolerance = direction.get("tolerance", 0.02)
            gap = abs(a.ours - b.ours) / max(abs(b.ours), 1e-12)
            out["verdict"] = "agrees" if gap <= tolerance else "disagrees"
            out["detail"] = f"relative gap {gap:.1%} (tolerance {tolerance:.0%})"
        else:
            gap = (a.ours - b.ours) * (1 if a.higher_is_better else -1)
            # A row run once borrows the seed spread of the row it is compared with.
            std_a, std_b = a.ours_std or b.ours_std, b.ours_std or a.ours_std
            noise = math.hypot(std_a or 0.0, std_b or 0.0)
            if noise and abs(gap) <= noise:
                out["verdict"] = "within seed noise"
            else:
                out["verdict"] = "agrees" if gap > 0 else "disagrees"
            out["detail"] = (f"gap {gap:+.2f} in the better direction"
                             + (f", seed noise {noise:.2f} (seeds {a.seeds} and {b.seeds})"
                                if noise else " (one seed)"))
        verdicts.append(out)
    return verdicts


def _fmt(value: float | None, std: float | None = None, digits: int = 2) -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None else "")


def reference_gap(r: RowResult) -> str:
    """Ours minus the reference; whether the gap is inside the two seed spreads combined
    (one-seed sides borrow the other side's spread); and, with two or more seeds on each
    side, Welch's t-test p-value (small: the gap is unlikely to be seed noise)."""
    if r.ours is None or r.reference is None:
        return "-"
    gap = r.ours - r.reference
    std_a, std_b = r.ours_std or r.reference_std, r.reference_std or r.ours_std
    noise = math.hypot(std_a or 0.0, std_b or 0.0)
    if not noise:
        return "identical" if abs(gap) < 1e-9 else f"{gap:+.2f} (one seed each)"
    inside = "within" if abs(gap) <= noise else "**outside**"
    text = f"{gap:+.2f} ({inside} the seed spread {noise:.2f}"
    if r.seeds > 1 and r.reference_seeds > 1 and r.ours_std and r.reference_std:
        import scipy.stats

        p = scipy.stats.ttest_ind_from_stats(r.ours, r.ours_std, r.seeds, r.reference,
                                             r.reference_std, r.reference_seeds,
                                             equal_var=False).pvalue
        text += f"; Welch p = {p:.2f}"
    return text + ")"


def reference_verdict(r: RowResult) -> str:
    """The parity claim's verdict: ours and the reference agree when they are identical or
    the gap is inside the seed spread, disagree outside it; one seed each is not judged."""
    gap = reference_gap(r)
    if gap == "identical" or "(within" in gap:
        return f"agrees ({gap})"
    if "**outside**" in gap:
        return f"disagrees ({gap.replace('**', '')})"
    return f"not judged ({gap})"


def _row_from_json(row: Mapping[str, Any]) -> RowResult:
    fields = {f.name for f in dataclasses.fields(RowResult)}
    return RowResult(**{k: v for k, v in row.items() if k in fields})


def write_report(results_dir: str, name: str, table: Mapping[str, Any], scale: str,
                 rows: Sequence[RowResult], commands: Mapping[str, Sequence[str]],
                 invocation: str) -> str:
    """``TABLE.md`` and ``TABLE.json`` under ``results_dir``; returns the markdown."""
    verdicts = agreement(table, rows)
    spec = scale_spec(table, scale)
    compared = "compare" in spec or "reference_results" in spec
    lines = [f"# {table['title']}", "",
             f"Paper: {table['paper']}. Paper metric: {table['paper_metric']}.", "",
             f"Ours ({scale} scale): {spec.get('ours_metric', '')}.", ""]
    if compared:
        lines += [f"Reference: {spec.get('reference', '')}.", ""]
    lines += [f"Produced by: `{invocation}`", ""]
    if compared:
        lines += ["| row | paper | ours | reference | ours - reference | minutes per run "
                  "(where) | run | paper source (check) |", "|---|---|---|---|---|---|---|---|"]
    else:
        lines += ["| row | paper | ours | run | paper source (check) |", "|---|---|---|---|---|"]
    for r in rows:
        ours = _fmt(r.ours, r.ours_std) if r.missing is None else f"not run: {r.missing}"
        deterministic = spec.get("deterministic", False)  # one run says it all
        if r.seeds and compared and not deterministic:
            ours += f" ({r.seeds} seeds)" if r.seeds > 1 else " (1 seed)"
        beside = ""
        if compared:
            reference = _fmt(r.reference, r.reference_std) + (
                "" if deterministic else f" ({r.reference_seeds} seeds)"
                if r.reference_seeds > 1 else " (1 seed)" if r.reference_seeds else "")
            beside = f"{reference} | {reference_gap(r)} | {r.minutes or '-'} | "
        lines.append(f"| {r.label} | {_fmt(r.paper, r.paper_std)} | {ours} | {beside}"
                     f"{r.run or '-'} | {r.source} ({r.check}) |")
    if verdicts:
        lines += ["", "Directions the paper reports, and ours:", "",
                  "| claim | paper | ours | verdict |", "|---|---|---|---|"]
        for v in verdicts:
            paper = " vs ".join(_fmt(p) for p in v["paper"])
            ours = " vs ".join(_fmt(o) for o in v["ours"])
            detail = f" ({v['detail']})" if v.get("detail") else ""
            lines.append(f"| {v['claim']} ({v['rows'][0]} vs {v['rows'][1]}) | {paper} | "
                         f"{ours} | **{v['verdict']}**{detail} |")
    if commands:
        lines += ["", "Commands (one per task; a run whose result file exists is not run "
                  "again):" if compared else "Runs (each command makes one model dir; a "
                  "finished run is not run again):", "", "```"]
        lines += [shell_command(command) for command in commands.values()]
        lines += ["```"]
    markdown = "\n".join(lines) + "\n"
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, f"{name}.md"), "w") as f:
        f.write(markdown)
    with open(os.path.join(results_dir, f"{name}.json"), "w") as f:
        json.dump({"table": name, "scale": scale, "invocation": invocation,
                   "rows": [dataclasses.asdict(r) for r in rows], "directions": verdicts,
                   "commands": {d: list(c) for d, c in commands.items()}}, f, indent=1)
    return markdown


def plot_table(results_dir: str, name: str, table: Mapping[str, Any], scale: str,
               rows: Sequence[RowResult]) -> list[str]:
    """PNGs of the table: paper and ours side by side (``bars``), or error against the
    number of labelled examples per series (``curve``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = scale_spec(table, scale).get("plot", "bars")
    path = os.path.join(results_dir, f"{name}.png")
    if "compare" in scale_spec(table, scale):
        _plot_comparison(table, rows, path)
        return [path]
    if kind == "curve":
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        series: dict[str, list[tuple[float, float]]] = {}
        extra = {r["id"]: r for r in table["rows"]}
        for r in rows:
            if r.ours is not None:
                series.setdefault(extra[r.id]["series"], []).append((extra[r.id]["x"], r.ours))
        for label, points in series.items():
            points.sort()
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("labelled training examples")
        ax.set_ylabel(table[scale].get("ours_metric", "").split(" (")[0] or "ours")
        ax.set_title(f"{table['title']}\n({scale} scale)", fontsize=9)
        ax.grid(alpha=0.3)
        if series:
            ax.legend()
    else:
        shown = [r for r in rows if r.ours is not None or r.paper is not None]
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(shown) + 1.6), sharey=True)
        y = range(len(shown))
        for ax, which, title, metric in (
                (axes[0], "paper", "paper", table["paper_metric"]),
                (axes[1], "ours", f"ours ({scale} scale)",
                 table[scale].get("ours_metric", ""))):
            values = [getattr(r, which) for r in shown]
            errors = [(getattr(r, f"{which}_std") or 0.0) if v is not None else 0.0
                      for r, v in zip(shown, values, strict=True)]
            ax.barh(list(y), [v if v is not None else 0.0 for v in values], xerr=errors,
                    color="C0" if which == "paper" else "C1")
            present = [v for v in values if v is not None]
            if present:  # zoom on the differences, which are what the table is about
                low, high = min(present), max(present)
                pad = (high - low) * 0.6 or abs(high) * 0.05 or 1.0
                ax.set_xlim(max(0.0, low - pad) if low >= 0 else low - pad, high + pad)
            left = ax.get_xlim()[0]
            for i, v in enumerate(values):
                ax.text(v if v is not None else left, i, f" {_fmt(v)}" if v is not None
                        else (" not reported" if which == "paper" else " not run"),
                        va="center", fontsize=8)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("\n".join(_wrap(metric, 70)), fontsize=7)
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(list(y))
        axes[0].set_yticklabels([r.label for r in shown], fontsize=8)
        axes[0].invert_yaxis()
        fig.suptitle(table["title"], fontsize=10, y=1.0)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [path]


def _plot_comparison(table: Mapping[str, Any], rows: Sequence[RowResult], path: str) -> None:
    """Per row: ours and the reference side by side with their seed spreads as error
    bars, the paper's figure as a marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(rows) + 2.5, 3.8))
    width = 0.38
    for offset, which, label, color in ((-width / 2, "ours", "ours", "C0"),
                                        (width / 2, "reference", "reference", "C1")):
        xs = [i + offset for i, r in enumerate(rows) if getattr(r, which) is not None]
        ys = [getattr(r, which) for r in rows if getattr(r, which) is not None]
        errors = [getattr(r, f"{which}_std") or 0.0 for r in rows
                  if getattr(r, which) is not None]
        ax.bar(xs, ys, width, yerr=errors, capsize=3, color=color, label=label)
    papers = [(i, r.paper) for i, r in enumerate(rows) if r.paper is not None]
    if papers:
        ax.scatter(*zip(*papers, strict=True), marker="_", s=500, color="k", zorder=3,
                   label="paper (BERT-Base)")
    ax.set_xticks(range(len(rows)), [r.label for r in rows], rotation=25, ha="right",
                  fontsize=8)
    ax.set_ylabel("score (mean ± std over seeds)")
    ax.set_title(table["title"], fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def write_index(out_dir: str, doc: Mapping[str, Any], scale: str) -> str:
    """``README.md`` of ``out_dir``: every reported table with its direction verdicts."""
    lines = [f"# Paper tables at {scale} scale", "",
             "Written by `python -m pretrain_lm.tools.reproduce` from the tables below (each "
             "file names the command that produced it). At demo scale the absolute numbers "
             "are not the papers' (shipped data, tiny models, CPU budgets); compare the "
             "directions.", "",
             "| table | claim (paper) | verdict |", "|---|---|---|"]
    for name in doc["tables"]:
        path = os.path.join(out_dir, f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            report = json.load(f)
        link = f"[{name}]({name}.md)"
        claims = [(v["claim"], v["verdict"]) for v in report["directions"]]
        claims += [(f"{row.label}: ours equals the reference implementation's",
                    reference_verdict(row)) for row in map(_row_from_json, report["rows"])
                   if row.ours is not None and row.reference is not None]
        for claim, verdict in claims or [("-", "-")]:
            lines.append(f"| {link} | {claim} | {verdict} |")
            link = ""
    markdown = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(markdown)
    return markdown


def reproduce(names: Sequence[str], scale: str = "demo", *, root: str | None = None,
              results_dir: str = os.path.join("results", "reproduce"),
              extra_bindings: Sequence[str] = (), decode_flags: Sequence[str] = (),
              dry_run: bool = False, report_only: bool = False, invocation: str = "",
              doc: Mapping[str, Any] | None = None, jobs: int = 1) -> dict[str, str]:
    """Runs and reports each table; returns ``{table: markdown}``."""
    doc = doc or load_tables()
    out_dir = os.path.join(results_dir, scale)
    reports = {}
    for name in names:
        rows, commands = run_table(doc, name, scale, root=root,
                                   extra_bindings=extra_bindings, decode_flags=decode_flags,
                                   dry_run=dry_run, report_only=report_only, jobs=jobs)
        if dry_run:
            continue
        table = doc["tables"][name]
        reports[name] = write_report(out_dir, name, table, scale, rows, commands,
                                     invocation or f"python -m pretrain_lm.tools.reproduce {name} "
                                     f"--scale={scale}")
        plot_table(out_dir, name, table, scale, rows)
        mix_run = scale_spec(table, scale).get("layer_weights")
        if mix_run:
            _plot_layer_weights(doc, table, scale, mix_run, root, out_dir, name)
    if reports:
        write_index(out_dir, doc, scale)
    return reports


def _plot_layer_weights(doc: Mapping[str, Any], table: Mapping[str, Any], scale: str,
                        run_id: str, root: str | None, out_dir: str, name: str) -> None:
    from pretrain_lm.tools import layer_weights

    group_name = table[scale]["group"]
    group = doc["run_groups"][group_name]
    runner = GroupRunner(group_name, group, group_root(group, group_name, root))
    seeds = group["runs"][run_id].get("seeds") or [None]
    runs = {f"seed {s}" if s is not None else run_id: d
            for s, d in zip(seeds, runner.model_dirs(run_id), strict=True)}
    layer_weights.plot_layer_weights(runs, os.path.join(out_dir, f"{name}_layer_weights.png"))


def main(argv: list[str]) -> None:
    from absl import flags

    from pretrain_lm import gin_utils

    values = flags.FLAGS
    try:
        doc = load_tables()
    except (OSError, TablesError, json.JSONDecodeError) as e:
        sys.exit(f"error: {TABLES_FILE}: {e}")
    if values.list:
        print(list_tables(doc))
        return
    if values.scale not in SCALES:
        sys.exit(f"error: --scale={values.scale}: choose one of {SCALES}.")
    names = argv[1:] or ([n for n, t in doc["tables"].items()
                          if "unavailable" not in scale_spec(t, values.scale)]
                          if values.all else [])
    if not names or (values.all and argv[1:]):
        sys.exit("error: name tables, or give --all (python -m pretrain_lm.tools.reproduce --list "
                 "names them).")
    gin_utils.quiet_library_logs()
    invocation = " ".join(["python -m pretrain_lm.tools.reproduce",
                           *(shlex.quote(a) for a in sys.argv[1:])])
    try:
        reports = reproduce(names, values.scale, root=values.model_dir,
                            results_dir=values.results_dir,
                            extra_bindings=values.gin_bindings,
                            decode_flags=values.decode_flag, dry_run=values.dry_run,
                            report_only=values.report_only, invocation=invocation, doc=doc,
                            jobs=values.jobs)
    except (TablesError, RunFailedError) as e:
        sys.exit(f"error: {e}")
    for name, markdown in reports.items():
        print(markdown)
        print(f"written to {os.path.join(values.results_dir, values.scale, name)}"
              ".{md,json,png}")


if __name__ == "__main__":
    # Flags are defined only when run as a program (see pretrain_lm/tools/sweep.py).
    from absl import app, flags

    flags.DEFINE_bool("list", False, "Name the tables and exit.")
    flags.DEFINE_bool("all", False, "Every table that runs at --scale.")
    flags.DEFINE_string("scale", "demo", "demo (shipped data, CPU minutes), benchmark (a "
                        "real checkpoint fine-tuned on the real benchmark files, beside the "
                        "reference implementation) or full (the papers' settings).")
    flags.DEFINE_string("model_dir", None, "Root of the runs: ROOT/<run group>/<run> "
                        "(default: each run group's root in data/paper_tables.json).")
    flags.DEFINE_string("results_dir", os.path.join("results", "reproduce"),
                        "Where TABLE.md / .json / .png go (under SCALE/).")
    flags.DEFINE_integer("jobs", 1, "Runs (seeds, evaluations, ensembles) made at the same "
                         "time, each a process once the runs it needs exist; on a 2-core "
                         "machine 2-3 keep the cores busy.")
    flags.DEFINE_bool("dry_run", False, "Print the commands of missing runs; run nothing.")
    flags.DEFINE_bool("report_only", False, "Run nothing: report the runs that exist "
                      "(rows without results read 'not run').")
    flags.DEFINE_multi_string("gin_bindings", [], "Added to every training run "
                              "(--gin.X=V is rewritten to these).")
    flags.DEFINE_multi_string("decode_flag", [], "NAME=VALUE added to every decode run "
                              "(e.g. max_examples=50).")
    from pretrain_lm import gin_utils

    app.run(main, argv=gin_utils.main_argv())
