"""RULER multi-document QA in ReFINE's format: the official parquet loader and an offline generator.

Prompt: spec 3.3 (ReFINE's variant of RULER `scripts/data/synthetic/constants.py:49-52`, "passages"
wording and a final "\\nAnswer:"). Documents `Document {i}:\\n{text}` joined by blank lines
(RULER `qa.py:116`), gold documents shuffled among distractors (`qa.py:125-150`), sized so that
prompt_length + 32 answer tokens <= max_seq_length (spec 3.3). The offline tasks replace SQuAD / HotpotQA
by synthetic facts: `ruler_squadqa` asks one fact of an article (its other paragraphs are the first
distractors);
`ruler_hotpotqa` needs two titled documents (entity -> founder -> birthplace). Entities of the test split
come from the evaluation half of the nouns, the train split from the training half.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from refine.data.batching import count_tokens
from refine.data.io import read_table
from refine.data.text import FACT_KINDS, Fact, Part, entity_nouns, filler_sentence, random_value, word_list

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


@dataclass
class QAConfig:
    """`refine data qa --cfg` fields; `source: local` copies ReFINE's files for `model` from `local_dir`."""

    tasks: list[str] = field(default_factory=lambda: list(QA_TASKS))
    lengths: list[int] = field(default_factory=lambda: [1024, 2048, 4096])
    train_samples: int = 200
    test_samples: int = 40
    seed: int = 0
    answer_reserve: int = ANSWER_RESERVE
    source: str = "synthetic"
    local_dir: str | None = None
    model: str = "delta_net"


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


def generate_qa(
    task: str,
    tokenizer,
    max_seq_length: int,
    num_samples: int,
    *,
    seed: int = 0,
    split: str = "test",
    answer_reserve: int = ANSWER_RESERVE,
) -> pd.DataFrame:
    """Synthetic RULER-QA rows (`QA_COLUMNS`): as many distractors as fit prompt_length + reserve <= max."""
    if task not in EXAMPLES:
        raise ValueError(f"unknown QA task {task!r}; choose from {list(EXAMPLES)}")
    part: Part = "eval" if split == "test" else "train"
    rng = random.Random(f"{seed}:{task}:{split}:{max_seq_length}")
    budget = max_seq_length - answer_reserve
    rows = []
    for index in range(num_samples):
        question, answers, gold, distractor = EXAMPLES[task](rng, part)
        used = count_tokens([format_prompt(gold, question)], tokenizer)[0]
        if used > budget:
            raise ValueError(f"{task}: gold documents alone take {used} tokens > {budget}")
        extra: list[str] = []
        full = False
        while not full:  # add distractors by their own token counts, 16 at a time
            batch = [distractor() for _ in range(16)]
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
