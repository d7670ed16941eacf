"""RULER-QA: ReFINE's real test files load (200 rows), synthetic QA has the same format, fits, is seeded."""

import re

import pandas as pd
import pytest

from refine.data.corpus import synthetic_corpus
from refine.data.qa import QA_COLUMNS, QA_TASKS, TEMPLATE, generate_qa, load_ruler_qa, ruler_qa_file
from refine.data.text import FACT_KINDS, part_of
from refine.data.tokenizer import train_tokenizer

HEAD, _, TAIL = TEMPLATE.partition("{context}")
TAIL = TAIL.partition("{question}")[0]
QUESTIONS = [re.escape(k.question).replace(re.escape("{key}"), r"\w+ (\w+)") for k in FACT_KINDS] + [
    r"Where was the founder of the \w+ (\w+) born\?"
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(synthetic_corpus(40, 0, n_words=800)["text"], vocab_size=1024)


@pytest.mark.parametrize("task", QA_TASKS)
@pytest.mark.parametrize("model", ["lact", "delta_net"])
@pytest.mark.parametrize("length", [4096, 8192])
def test_real_files(eval_data, task, model, length):
    frame = load_ruler_qa(ruler_qa_file(eval_data / "ruler_qa", task, model, length))
    assert len(frame) == 200 and sorted(frame["index"]) == list(range(200))
    assert (frame["task"] == task).all() and (frame["max_seq_length"] == length).all()
    assert (frame["total_length"] <= length).all()
    assert frame["prompt"].str.startswith(HEAD + "Document 1:\n").all()
    assert frame["prompt"].map(lambda p: TAIL in p and p.endswith("\nAnswer:")).all()


@pytest.mark.parametrize("task", QA_TASKS)
def test_synthetic_format_fit_and_entities(tokenizer, task):
    frame = generate_qa(task, tokenizer, 1024, 8, seed=3, split="test")
    assert list(frame.columns) == list(QA_COLUMNS) and len(frame) == 8
    for row in frame.itertuples():
        assert row.prompt.startswith(HEAD + "Document 1:\n") and row.prompt.endswith("\nAnswer:")
        n_docs = len(re.findall(r"^Document \d+:$", row.prompt, flags=re.MULTILINE))
        assert n_docs >= 4
        assert all(a in row.prompt for a in row.answer)
        n_tokens = len(tokenizer(row.prompt, add_special_tokens=False)["input_ids"])
        assert row.prompt_length == n_tokens and n_tokens + 32 <= 1024 and n_tokens > 800
        assert row.total_length == row.prompt_length + row.max_answer_length
        question = row.prompt.rpartition("Question: ")[2].removesuffix("\nAnswer:")
        entity_noun = next(m.group(1) for m in (re.fullmatch(p, question) for p in QUESTIONS) if m)
        assert part_of(entity_noun) == "eval"


def test_synthetic_deterministic_and_splits_differ(tokenizer):
    a = generate_qa("ruler_squadqa", tokenizer, 1024, 4, seed=0, split="test")
    pd.testing.assert_frame_equal(a, generate_qa("ruler_squadqa", tokenizer, 1024, 4, seed=0, split="test"))
    train = generate_qa("ruler_squadqa", tokenizer, 1024, 4, seed=0, split="train")
    assert not set(a["prompt"]) & set(train["prompt"])


def test_loader_errors_name_file_and_column(tmp_path, eval_data):
    frame = pd.read_parquet(ruler_qa_file(eval_data / "ruler_qa", "ruler_squadqa", "lact", 4096)).head(3)
    missing = tmp_path / "no_answer.parquet"
    frame.drop(columns=["answer"]).to_parquet(missing)
    with pytest.raises(KeyError, match=r"no_answer\.parquet.*'answer'"):
        load_ruler_qa(missing)
    empty = tmp_path / "empty.parquet"
    frame.head(0).to_parquet(empty)
    with pytest.raises(ValueError, match=r"empty\.parquet: file has no rows"):
        load_ruler_qa(empty)
    with pytest.raises(FileNotFoundError, match="absent.parquet"):
        load_ruler_qa(tmp_path / "absent.parquet")


# ------------------------------------------------- RULER's generator over the public data (offline local copies)
WORDS = "river stone cloud lamp green quiet market bridge winter paper forest copper silver orange garden".split()


def _text(rng, n=30):
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def squad_rows(n_articles=6):
    """SQuAD v2 validation rows (the hub's layout): two paragraphs per article, two questions each, the second
    one of the first paragraph unanswerable."""
    import random

    rng, rows = random.Random(0), []
    for a in range(n_articles):
        for p in range(2):
            context = f"Article {a} paragraph {p}: " + _text(rng) + f" answer{a}{p}0 answer{a}{p}1"
            for q in range(2):
                answers = [] if (p, q) == (0, 1) else [f"answer{a}{p}{q}", f"alt{a}{p}{q}"]
                spans = {"text": answers, "answer_start": [0] * len(answers)}
                question = f"Question {a}{p}{q}?"
                rows.append({"id": f"{a}{p}{q}", "title": f"T{a}", "context": context, "question": question,
                             "answers": spans})  # fmt: skip
    return rows


def hotpot_rows(n=8):
    """HotpotQA distractor validation rows (the hub's layout): ten titled documents each."""
    import random

    rng = random.Random(1)
    return [
        {
            "id": str(i),
            "question": f"Hop question {i}?",
            "answer": f"hop{i}",
            "type": "bridge",
            "level": "hard",
            "supporting_facts": {"title": [f"H{i}a"], "sent_id": [0]},
            "context": {
                "title": [f"H{i}{c}" for c in "abcdefghij"],
                "sentences": [[f"hop{i} sentence. ", _text(rng, 8)] for _ in range(10)],
            },
        }  # fmt: skip
        for i in range(n)
    ]


def test_pools_follow_ruler_read_squad_and_read_hotpotqa():
    from refine.data.qa import hotpot_pool, squad_pool

    squad = squad_pool(squad_rows())
    assert len(squad.docs) == 12 and squad.docs == sorted(squad.docs)  # unique paragraphs, sorted
    assert len(squad.qas) == 18  # the unanswerable question of each article is dropped
    first = squad.qas[0]
    assert first["answers"] == ["answer000", "alt000"] and squad.docs[first["context"][0]].startswith("Article 0 p")
    assert [squad.docs[i][:20] for i in first["more"]] == ["Article 0 paragraph "]  # the article's other paragraph
    assert "paragraph 1" in squad.docs[first["more"][0]]
    hotpot = hotpot_pool(hotpot_rows())
    assert len(hotpot.qas) == 8 and len(hotpot.docs) == 80
    assert all(len(q["context"]) == 10 and not q["more"] for q in hotpot.qas)
    assert hotpot.docs[hotpot.qas[3]["context"][0]].startswith("H3a\nhop3 sentence. ")


@pytest.mark.parametrize("task", QA_TASKS)
def test_hub_rows_through_the_command(tmp_path, tokenizer, task):
    """`refine data qa` with train_source hub on local copies in the hub's layout: test = the first questions,
    train = the next ones, prompts fit and hold the gold documents and answers."""
    import json

    from refine.commands.data import add_parser
    from refine.data.qa import hotpot_pool, squad_pool
    from refine.data.tokenizer import save_tokenizer

    rows = squad_rows() if task == "ruler_squadqa" else hotpot_rows()
    pool = (squad_pool if task == "ruler_squadqa" else hotpot_pool)(rows)
    copy = tmp_path / f"{task}.parquet"
    pd.DataFrame(rows).to_parquet(copy)
    cfg = {"tasks": [task], "lengths": [1024], "source": "hub", "test_samples": 3, "train_samples": 4,
           "hub_files": {task: str(copy)}}  # fmt: skip
    parser = __import__("argparse").ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    tok = save_tokenizer(tokenizer, tmp_path / "tok")
    args = parser.parse_args(["data", "qa", "--cfg", json.dumps(cfg), "--tokenizer", str(tok), "--out", str(tmp_path)])
    assert args.func(args) == 0
    for split, first, n in (("test", 0, 3), ("train", 3, 4)):
        frame = load_ruler_qa(tmp_path / f"{task}_1024_{split}.parquet")
        assert list(frame.columns) == list(QA_COLUMNS) and list(frame["index"]) == list(range(n))
        for row, qa in zip(frame.itertuples(), pool.qas[first : first + n]):
            assert row.prompt.endswith(f"Question: {qa['question']}\nAnswer:") and list(row.answer) == qa["answers"]
            assert all(pool.docs[i] in row.prompt for i in qa["context"])
            assert row.prompt_length == len(tokenizer(row.prompt, add_special_tokens=False)["input_ids"])
            assert row.total_length <= 1024 and row.prompt.count("\nDocument ") >= len(qa["context"]) - 1
