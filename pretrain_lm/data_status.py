"""Which real benchmarks are at hand: found or missing, where, counts against the official ones.

    python -m pretrain_lm.data_status            # a table; exit status 1 if any is not usable
    python -m pretrain_lm.data_status --json     # the same as JSON

Files in their original layout are read from ``$PRETRAIN_LM_DATA_DIR`` (``--data_dir``
overrides it), the others from the packages of the ``benchmarks`` extra
(``pip install -e '.[benchmarks]'``). Every file is read and counted as the tasks read it
(``tasks/benchmark_data.py``); a copy whose counts differ from the official ones is shown
as REFUSED with each difference, and the ``bench_*`` tasks refuse it too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

# benchmark -> the task names (tasks/benchmark_tasks.py) that read it
TASKS = {
    "conll2003": "bench_conll2003_ner_bert_uncased, bench_conll2003_ner_words[_unk_classes|"
                 "_vectors]",
    "glue_sst2": "bench_glue_sst2_bert_uncased",
    "glue_cola": "bench_glue_cola_bert_uncased",
    "glue_mrpc": "bench_glue_mrpc_bert_uncased",
    "glue_rte": "bench_glue_rte_bert_uncased",
    "glue_wnli": "bench_glue_wnli_bert_uncased",
    "stsb": "bench_glue_stsb_bert_uncased",
    "sst5": "bench_sst5_bert_uncased",
    "trec": "bench_trec6_bert_uncased, bench_trec50_bert_uncased",
    "squad_v1_dev": "bench_squad_v1_dev_bert_uncased",
    "multi30k": "bench_multi30k_translate_en_de",
    "ptb": "bench_ptb_lm_words",
    "wnut16": "bench_wnut16_ner_bert_uncased, bench_wnut16_ner_words",
    "glove_6b_50d": "bench_conll2003_ner_words_vectors; tasks.benchmark_data.glove_6b_50d()",
    "word_relations": "tasks.benchmark_data.analogies() / wordsim353() / simlex999()",
}


def _counts(counts: dict[str, int], official: dict[str, int]) -> str:
    shown = []
    for key, want in official.items():
        got = counts.get(key)
        if got is None or got == want:
            mark = ""
        else:
            mark = (f" (official {want:,}: {abs(got - want):,} "
                    f"{'more' if got > want else 'fewer'})")
        shown.append(f"{key} {'-' if got is None else format(got, ',')}{mark}")
    extra = {k: v for k, v in counts.items() if k not in official and v}
    if extra:
        shown.append("(counted: " + ", ".join(f"{k} {v:,}" for k, v in extra.items()) + ")")
    return ", ".join(shown)


def report(rows: Sequence[dict]) -> str:
    from tasks import benchmark_data as bd

    where, source = bd.data_dir_source()
    lines = [f"Data directory: {where or '(not set)'}   [{source}; set ${bd.ENV_VAR} or the "
             f"gin macro {bd.GIN_MACRO}]",
             f"Benchmark packages: {bd.INSTALL_EXTRA}", ""]
    by_bench: dict[str, list[dict]] = {}
    for row in rows:
        by_bench.setdefault(row["benchmark"], []).append(row)
    for name, parts in by_bench.items():
        states = {r["state"] for r in parts}
        state = ("FOUND" if states == {"found"} else "MISSING" if states == {"missing"}
                 else "REFUSED" if states & {"refused", "malformed"} else "PARTIAL")
        first = parts[0]
        note = f" ({first['note']})" if first["note"] else ""
        lines.append(f"{state:8s} {name}: {first['title']}{note}")
        lines.append(f"         tasks: {TASKS.get(name, '-')}")
        located = [r["where"] for r in parts if r["where"]]
        if located:
            lines.append(f"         where: {_common_folder(located)}")
        for r in parts:
            if r["state"] in ("found", "refused"):
                verdict = "= official" if r["state"] == "found" else "REFUSED"
                lines.append(f"         {r['part']}: {verdict}: "
                             f"{_counts(r['counts'], r['official'])}")
            elif r["state"] == "malformed":
                lines.append(f"         {r['part']}: MALFORMED: "
                             + r["problem"].replace("\n", "\n           "))
            else:
                official = ", ".join(f"{k} {v:,}" for k, v in r["official"].items())
                lines.append(f"         {r['part']}: missing (official: {official})")
        if state != "FOUND":
            lines.append(f"         how to get it: {first['how_to_get']}")
        lines.append("")
    usable = sum(r["state"] == "found" for r in rows)
    lines.append(f"{usable} of {len(rows)} benchmark files usable.")
    return "\n".join(lines)


def _common_folder(paths: Sequence[str]) -> str:
    import os

    flat = [p for joined in paths for p in joined.split(", ")]
    return os.path.commonpath(flat) if len(flat) > 1 else flat[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrain_lm.data_status",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", help="read the data directory from here instead of "
                                           "$PRETRAIN_LM_DATA_DIR")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    from tasks import benchmark_data as bd

    if args.data_dir:
        bd.set_data_dir(args.data_dir)
    rows = bd.status()
    print(json.dumps(rows, indent=1) if args.json else report(rows))
    return 0 if all(r["state"] == "found" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
