"""LongBench: ReFINE's 12 (+2) task files load with the official prompts; evaluated counts = Table C.1."""

import pandas as pd
import pytest

from refine.data.batching import iter_batches
from refine.data.longbench import (
    EXTRA_TASKS,
    MAX_GEN_TOKENS,
    PROMPTS,
    TASK_KEYS,
    TASKS,
    evaluated_count,
    load_longbench,
    load_task,
    task_file,
)
from refine.data.tokenizer import count_tokens

# spec 3.3 / paper Table C.1: rows evaluated with batches of 8 and drop_last.
EVALUATED = {
    "narrativeqa": 56,
    "qasper": 184,
    "multifieldqa_en": 136,
    "hotpotqa": 96,
    "2wikimqa": 184,
    "qmsum": 104,
    "multi_news": 192,
    "samsum": 152,
    "trec": 200,
    "triviaqa": 120,
    "lcc": 488,
    "repobench-p": 320,
}


def test_task_constants():
    assert list(TASK_KEYS.values()) == [
        "NQ",
        "QR",
        "MF",
        "HP",
        "2W",
        "QM",
        "MN",
        "SS",
        "TC",
        "TQ",
        "LC",
        "RP",
    ]
    assert set(MAX_GEN_TOKENS) == set(PROMPTS) == set(TASKS) | set(EXTRA_TASKS)


def test_real_files_counts_and_prompts(eval_data):
    frames = load_longbench(eval_data / "longbench")
    assert list(frames) == list(TASKS)
    for task, frame in frames.items():
        assert evaluated_count(len(frame)) == EVALUATED[task], task
        assert sum(len(b) for b in iter_batches(frame, 8)) == EVALUATED[task]
        assert (frame["task"] == task).all() and (frame["max_gen_tokens"] == MAX_GEN_TOKENS[task]).all()
        head = PROMPTS[task].partition("{context}")[0]
        tail = PROMPTS[task].rpartition("}")[2]
        assert frame["prompt"].str.startswith(head).all() and frame["prompt"].str.endswith(tail).all(), task
    extra = load_longbench(eval_data / "longbench", EXTRA_TASKS)
    assert {t: len(f) for t, f in extra.items()} == {"musique": 17, "gov_report": 16}


def test_errors_name_file_and_column(tmp_path, eval_data):
    frame = pd.read_parquet(task_file(eval_data / "longbench", "trec")).head(2)
    frame.drop(columns=["answers"]).to_parquet(task_file(tmp_path, "trec"))
    with pytest.raises(KeyError, match=r"trec_16384\.parquet.*'answers'"):
        load_task(tmp_path, "trec")
    frame.head(0).to_parquet(task_file(tmp_path, "lcc"))
    with pytest.raises(ValueError, match=r"lcc_16384\.parquet: file has no rows"):
        load_task(tmp_path, "lcc")
    with pytest.raises(ValueError, match="unknown LongBench task"):
        load_task(tmp_path, "lsht")


# --------------------------------------------------------------------------- the hub path (offline fixtures)
REV = "0" * 40


def hub_archive(path, rows_per_task):
    """A zip in the hub dataset's layout: data/<task>.jsonl with the official fields."""
    import json
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for task, rows in rows_per_task.items():
            lines = [
                json.dumps(
                    {
                        "input": q,
                        "context": c,
                        "answers": a,
                        "length": len(c.split()),
                        "dataset": task,
                        "language": "en",
                        "all_classes": None,
                        "_id": f"{task}-{i}",
                    }
                )  # fmt: skip
                for i, (q, c, a) in enumerate(rows)
            ]
            z.writestr(f"data/{task}.jsonl", "\n".join(lines) + "\n")
    return path


HUB_ROWS = {
    "trec": [("What is a cat?", "Q: Who? Type: Individual", ["Animal"]), ("Where?", "x " * 400, ["City"])],
    "lcc": [("", "def f(x):\n    return x\n", ["print(f(1))"])],
}


@pytest.fixture
def eval_data_or_none(request):
    """The real data folder when present (an extra check), else None."""
    try:
        return request.getfixturevalue("eval_data")
    except pytest.skip.Exception:
        return None


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from refine.data.tokenizer import train_tokenizer

    return train_tokenizer(["What is a cat? Q: Who? Type: Individual def f(x): return x print(f(1))"] * 4, 300)


def test_build_task_applies_the_official_template_and_filters_by_length(tmp_path, tiny_tokenizer):
    from refine.data.longbench import COLUMNS, archive_examples, build_task

    archive = hub_archive(tmp_path / "data.zip", HUB_ROWS)
    examples = archive_examples(archive, "trec")
    assert [e["_id"] for e in examples] == ["trec-0", "trec-1"]
    short = count_tokens(
        [PROMPTS["trec"].format(context=HUB_ROWS["trec"][0][1], input="What is a cat?")], tiny_tokenizer
    )
    frame = build_task(examples, "trec", tiny_tokenizer, max_length=short[0] + 50)  # the 400-word row is too long
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 1
    row = frame.iloc[0]
    assert row["prompt"] == PROMPTS["trec"].format(context="Q: Who? Type: Individual", input="What is a cat?")
    assert row["prompt_length"] == short[0] and row["max_answer_length"] == count_tokens(["Animal"], tiny_tokenizer)[0]
    assert row["total_length"] == row["prompt_length"] + row["max_answer_length"]
    assert list(row["answers"]) == ["Animal"] and row["max_gen_tokens"] == 64 and row["task"] == "trec"
    assert len(build_task(examples, "trec", tiny_tokenizer, max_length=10**6)) == 2


def test_hub_rows_have_the_local_files_layout(tmp_path, tiny_tokenizer, eval_data_or_none):
    """`refine data longbench` from the hub archive writes the same columns and types as from ReFINE's files."""
    import json

    import pyarrow.parquet as pq

    from refine.commands.data import add_parser
    from refine.data.longbench import COLUMNS, LongBenchConfig, build_task
    from refine.data.tokenizer import save_tokenizer

    tok = save_tokenizer(tiny_tokenizer, tmp_path / "tok")
    archive = hub_archive(tmp_path / "data.zip", HUB_ROWS)
    local = tmp_path / "local"  # ReFINE's layout: <task>_16384.parquet, some with a stored pandas index
    local.mkdir()
    for task, rows in HUB_ROWS.items():
        examples = [{"input": q, "context": c, "answers": a} for q, c, a in rows]
        frame = build_task(examples, task, tiny_tokenizer)
        frame.index = frame.index + 3  # a filtered file keeps the original row ids
        frame.to_parquet(task_file(local, task))

    def run(*argv):
        parser = __import__("argparse").ArgumentParser()
        add_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["data", "longbench", *map(str, argv)])
        return args.func(args)

    cfg = {"tasks": list(HUB_ROWS), "hub_revision": REV}
    assert run("--cfg", json.dumps({**cfg, "source": "hub"}), "--tokenizer", tok, "--archive", archive,
               "--out", tmp_path / "hub") == 0  # fmt: skip
    assert run("--cfg", json.dumps({**cfg, "source": "auto", "local_dir": str(local)}), "--out", tmp_path / "loc") == 0
    for task in HUB_ROWS:
        hub, loc = (pq.read_table(tmp_path / d / f"{task}.parquet") for d in ("hub", "loc"))
        assert hub.schema == loc.schema and hub.column_names == list(COLUMNS), task
        assert hub.to_pylist() == loc.to_pylist()
    if eval_data_or_none is not None:  # and the layout of ReFINE's real files
        real = pd.read_parquet(task_file(eval_data_or_none / "longbench", "trec"))[list(COLUMNS)]
        ours = pd.read_parquet(tmp_path / "hub" / "trec.parquet")
        assert real.dtypes.to_dict() == ours.dtypes.to_dict()  # (pandas writes large_string for string)
        assert type(real["answers"][0]) is type(ours["answers"][0])
    assert LongBenchConfig(source="auto", local_dir=str(tmp_path / "missing")).resolved_source() == "hub"
    assert LongBenchConfig(source="auto", local_dir=str(local)).resolved_source() == "local"
    with pytest.raises(ValueError, match="longbench.source"):
        LongBenchConfig(source="web")


def test_archive_comes_from_the_hub_cache_offline_and_a_missing_one_says_what_to_do(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    from refine.data.longbench import HUB_ARCHIVE, check_archive, download_archive

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # no network at test time
    with pytest.raises(RuntimeError, match="longbench.source: none"):
        check_archive("THUDM/LongBench", REV)
    snapshot = tmp_path / "cache" / "datasets--THUDM--LongBench" / "snapshots" / REV
    snapshot.mkdir(parents=True)
    hub_archive(snapshot / HUB_ARCHIVE, HUB_ROWS)
    check_archive("THUDM/LongBench", REV)
    out = download_archive("THUDM/LongBench", REV, tmp_path / "out" / "data.zip")
    assert out.read_bytes() == (snapshot / HUB_ARCHIVE).read_bytes()
