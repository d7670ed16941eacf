"""RULER multi-document QA in ReFINE's format: the official parquet loader, RULER's generator over the public
SQuAD v2 / HotpotQA data (`datasets`), and an offline generator.

Prompt: spec 3.3 (ReFINE's variant of RULER `scripts/data/synthetic/constants.py:49-52`, "passages"
wording and a final "\\nAnswer:"). Documents `Document {i}:\\n{text}` joined by blank lines
(RULER `qa.py:116`), gold documents shuffled among distractors (`qa.py:125-150`), sized so that
prompt_length + 32 answer tokens <= max_seq_length (spec 3.3). The offline tasks replace SQuAD / HotpotQA
by synthetic facts: `ruler_squadqa` asks one fact of an article (its other paragraphs are the first
distractors);
`ruler_hotpotqa` needs two titled documents (entity -> founder -> birthplace). Entities of the test split
come from the evaluation half of the nouns, the train split from the training half.

The public data (`source: hub`): RULER `scripts/data/synthetic/qa.py` `read_squad` / `read_hotpotqa` over the
SQuAD v2 and HotpotQA (distractor) dev sets: the documents are the unique paragraphs; a SQuAD question's gold
document is its paragraph and its article's other paragraphs are the first distractors; a HotpotQA question
keeps all ten of its documents. The test split is the first `test_samples` questions (ReFINE's `index`
0..199); the train split the next `train_samples` (ReFINE's 1600; the paper does not say which questions its
train files used, spec 3.3).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from refine.data.io import read_table
from refine.data.text import FACT_KINDS, Fact, Part, entity_nouns, filler_sentence, random_value, word_list
from refine.data.tokenizer import count_tokens

INSTRUCTION = (
    "Answer the question based on the given passages. Only give me the answer and do not output any other words."
)
TEMPLATE = (
    INSTRUCTION
    + "\n\nThe following are given passages.\n{context}\n\n"
    + INSTRUCTION
    + "\n\nQuestion: {question}\nAnswer:"
)
DOCUMENT = "Document {i}:\n{document}"
QA_TASKS = ("ruler_squadqa", "ruler_hotpotqa")
QA_COLUMNS = (
    "index",
    "prompt",
    "answer",
    "prompt_length",
    "max_answer_length",
    "total_length",
    "max_seq_length",
    "task",
)
ANSWER_RESERVE = 32  # tokens_to_generate of RULER qa (constants.py:50)
SOURCES = ("synthetic", "local", "hub")
# task -> (hub dataset, config name); RULER reads their dev sets (the "validation" split here).
HUB_DATASETS = {"ruler_squadqa": ("rajpurkar/squad_v2", None), "ruler_hotpotqa": ("hotpotqa/hotpot_qa", "distractor")}


@dataclass
class QAConfig:
    """`refine data qa --cfg` fields. `source`: synthetic (offline), local (ReFINE's files for `model` from
    `local_dir`) or hub (RULER's generator over the public data, `HUB_DATASETS` at `hub_revision`, or the local
    copies `hub_files` {task: parquet/jsonl in the hub's layout}); `train_source` (default: `source`) for the
    post-training files alone, e.g. ReFINE's test files with train files built from the hub."""

    tasks: list[str] = field(default_factory=lambda: list(QA_TASKS))
    lengths: list[int] = field(default_factory=lambda: [1024, 2048, 4096])
    train_samples: int = 200
    test_samples: int = 40
    seed: int = 0
    answer_reserve: int = ANSWER_RESERVE
    source: str = "synthetic"
    local_dir: str | None = None
    model: str = "delta_net"
    train_source: str | None = None
    hub_revision: str = "main"
    hub_files: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES or self.train_source not in (*SOURCES, None):
            raise ValueError(f"qa.source {self.source!r} / train_source {self.train_source!r}: choose from {SOURCES}")

    def split_source(self, split: str) -> str:
        return self.train_source or self.source if split == "train" else self.source


def format_prompt(documents: list[str], question: str) -> str:
    """The RULER-QA prompt for ordered documents."""
    context = "\n\n".join(DOCUMENT.format(i=i, document=d) for i, d in enumerate(documents, 1))
    return TEMPLATE.format(context=context, question=question)


def ruler_qa_file(data_dir: str | Path, task: str, model: str, length: int, split: str = "200_test") -> Path:
    """ReFINE's name: `ruler_{squadqa|hotpotqa}_{lact|delta_net}_{length}_{1600_train|200_test}.parquet`."""
    return Path(data_dir) / f"{task}_{model}_{length}_{split}.parquet"


def load_ruler_qa(path: str | Path) -> pd.DataFrame:
    """Read a RULER-QA parquet/jsonl file; errors name the file and any missing column."""
    return read_table(path, QA_COLUMNS)


def _paragraph(rng: random.Random, fact_sentence: str) -> str:
    """A few filler sentences with the fact sentence at a random place."""
    sentences = [filler_sentence(rng) for _ in range(rng.randint(2, 4))]
    sentences.insert(rng.randint(0, len(sentences)), fact_sentence)
    return " ".join(sentences)


def _entity(rng: random.Random, part: Part) -> str:
    return f"{rng.choice(word_list('adjectives'))} {rng.choice(entity_nouns(part))}"


def _article(rng: random.Random, part: Part) -> list[Fact]:
    """Facts about one entity, one per fact kind (the paragraphs of a SQuAD-like article)."""
    key = _entity(rng, part)
    return [Fact(kind, key, random_value(rng, kind.value, part)) for kind in rng.sample(FACT_KINDS, len(FACT_KINDS))]


def squad_like(rng: random.Random, part: Part):
    """(question, answers, [gold paragraph], distractor factory): the article's other paragraphs come first,
    then paragraphs of other articles (RULER `qa.py:125-135`)."""
    facts = _article(rng, part)
    more = [_paragraph(rng, f.statement) for f in facts[1:]]

    def distractor() -> str:
        return more.pop() if more else _paragraph(rng, rng.choice(_article(rng, part)).statement)

    return facts[0].question, [facts[0].value], [_paragraph(rng, facts[0].statement)], distractor


def _bridge(rng: random.Random, part: Part) -> tuple[str, str, str, list[str]]:
    """Entity, founder, birthplace and their two titled documents ("title\\ntext", HotpotQA style)."""
    entity, founder, place = (
        _entity(rng, part),
        random_value(rng, "name", part),
        random_value(rng, "place", part),
    )
    docs = [
        f"{entity.title()}\n" + _paragraph(rng, f"The {entity} was founded by {founder}."),
        f"{founder}\n" + _paragraph(rng, f"{founder} was born in {place}."),
    ]
    return entity, founder, place, docs


def hotpot_like(rng: random.Random, part: Part):
    """(question, answers, the two gold documents, distractor factory)."""
    entity, _, place, docs = _bridge(rng, part)

    def distractor() -> str:
        return rng.choice(_bridge(rng, part)[3])

    return f"Where was the founder of the {entity} born?", [place], docs, distractor


EXAMPLES = {"ruler_squadqa": squad_like, "ruler_hotpotqa": hotpot_like}


@dataclass
class QAPool:
    """RULER's QA pool: questions with their gold documents (`context`, ids into `docs`) and first distractors
    (`more`); the other documents are drawn at random."""

    qas: list[dict]  # {"question", "answers", "context": [doc id], "more": [doc id]}
    docs: list[str]

    def example(self, index: int, rng: random.Random):
        """(question, answers, gold documents, distractor factory) of question `index`."""
        qa = self.qas[index]
        more = list(qa["more"])
        rng.shuffle(more)
        used = set(qa["context"]) | set(more)

        def distractor() -> str | None:
            if more:
                return self.docs[more.pop()]
            if len(used) >= len(self.docs):
                return None  # every document is in the prompt (RULER: all documents)
            while (pick := rng.randrange(len(self.docs))) in used:
                pass
            used.add(pick)
            return self.docs[pick]

        return qa["question"], list(qa["answers"]), [self.docs[i] for i in qa["context"]], distractor


def _pool(docs_of_rows: list[list[str]]) -> tuple[list[str], dict[str, int]]:
    docs = sorted({d for docs in docs_of_rows for d in docs})  # RULER: sorted(set(...))
    return docs, {d: i for i, d in enumerate(docs)}


def squad_pool(rows: Iterable[dict]) -> QAPool:
    """RULER `read_squad` over SQuAD v2 rows (`title`, `context`, `question`, `answers.text`), in file order:
    answerable questions only; the article's other paragraphs are the first distractors."""
    rows = list(rows)
    docs, ids = _pool([[r["context"]] for r in rows])
    articles: dict[str, list[int]] = {}
    for r in rows:
        article = articles.setdefault(r["title"], [])
        if ids[r["context"]] not in article:
            article.append(ids[r["context"]])
    qas = [
        {
            "question": r["question"],
            "answers": list(r["answers"]["text"]),
            "context": [ids[r["context"]]],
            "more": [i for i in articles[r["title"]] if i != ids[r["context"]]],
        }
        for r in rows
        if len(r["answers"]["text"])
    ]
    return QAPool(qas, docs)


def hotpot_pool(rows: Iterable[dict]) -> QAPool:
    """RULER `read_hotpotqa` over HotpotQA distractor rows (`question`, `answer`, `context.title/sentences`):
    each question keeps its ten documents "title\ntext"."""
    rows = list(rows)
    per_row = [[f"{t}\n{''.join(s)}" for t, s in zip(r["context"]["title"], r["context"]["sentences"])] for r in rows]
    docs, ids = _pool(per_row)
    qas = [
        {"question": r["question"], "answers": [r["answer"]], "context": [ids[d] for d in row_docs], "more": []}
        for r, row_docs in zip(rows, per_row)
    ]
    return QAPool(qas, docs)


POOLS = {"ruler_squadqa": squad_pool, "ruler_hotpotqa": hotpot_pool}


def hub_pool(task: str, revision: str = "main", files: dict[str, str] | None = None) -> QAPool:
    """The pool of `task` from its hub dev set at `revision` (needs network once), or from a local copy
    `files[task]` in the hub's layout."""
    if files and task in files:
        return POOLS[task](read_table(files[task]).to_dict(orient="records"))
    import datasets

    repo, name = HUB_DATASETS[task]
    return POOLS[task](datasets.load_dataset(repo, name, split="validation", revision=revision))


def generate_qa(
    task: str,
    tokenizer,
    max_seq_length: int,
    num_samples: int,
    *,
    seed: int = 0,
    split: str = "test",
    answer_reserve: int = ANSWER_RESERVE,
    pool: QAPool | None = None,
    first: int = 0,
) -> pd.DataFrame:
    """RULER-QA rows (`QA_COLUMNS`): as many distractors as fit prompt_length + reserve <= max. The questions are
    synthetic, or those of `pool` from number `first` on (`index` counts from 0 in either case)."""
    if task not in EXAMPLES:
        raise ValueError(f"unknown QA task {task!r}; choose from {list(EXAMPLES)}")
    part: Part = "eval" if split == "test" else "train"
    rng = random.Random(f"{seed}:{task}:{split}:{max_seq_length}")
    budget = max_seq_length - answer_reserve
    if pool is not None and first + num_samples > len(pool.qas):
        raise ValueError(f"{task}: {first} + {num_samples} questions asked, the pool has {len(pool.qas)}")
    example: Callable = (
        (lambda i: EXAMPLES[task](rng, part)) if pool is None else (lambda i: pool.example(first + i, rng))
    )
    rows = []
    for index in range(num_samples):
        question, answers, gold, distractor = example(index)
        used = count_tokens([format_prompt(gold, question)], tokenizer)[0]
        if used > budget:
            raise ValueError(f"{task}: gold documents alone take {used} tokens > {budget}")
        extra: list[str] = []
        full = False
        while not full:  # add distractors by their own token counts, 16 at a time
            batch = [d for d in (distractor() for _ in range(16)) if d is not None]
            if not batch:  # the pool is spent
                break
            headed = [f"\n\nDocument {len(gold) + len(extra) + j + 1}:\n{d}" for j, d in enumerate(batch)]
            costs = count_tokens(headed, tokenizer)
            for doc, cost in zip(batch, costs):
                full = used + cost > budget
                if full:
                    break
                extra.append(doc)
                used += cost
        while True:  # exact check of the shuffled prompt; only distractors are dropped
            docs = gold + extra
            rng.shuffle(docs)
            prompt = format_prompt(docs, question)
            prompt_length = count_tokens([prompt], tokenizer)[0]
            if prompt_length <= budget:
                break
            if not extra:
                raise ValueError(f"{task}: sample {index} does not fit {budget} prompt tokens")
            extra.pop()
        max_answer = max(count_tokens(answers, tokenizer))
        rows.append(
            {
                "index": index,
                "prompt": prompt,
                "answer": answers,
                "prompt_length": prompt_length,
                "max_answer_length": max_answer,
                "total_length": prompt_length + max_answer,
                "max_seq_length": max_seq_length,
                "task": task,
            }
        )
    return pd.DataFrame(rows, columns=list(QA_COLUMNS))
