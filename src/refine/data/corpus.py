"""Pre-/mid-training documents: a deterministic synthetic corpus with long-range structure, or the hub.

Synthetic documents (docs/design.md, "The tiny default": the corpus must make long context matter) come in five
styles, all with entity names from the training half of the nouns (`text.part_of`):
  * `prose`: templated filler sentences; facts (entity -> multi-token code/name/place/count) stated once
    and recalled much later (a question with its answer, or a restatement) with other facts between;
  * `niah`: a RULER NIAH sample (random variant shape) followed by its answer prefix and answers;
  * `needle`: the simplest NIAH shape (one key, one 7-digit number, noise haystack) and its answer;
  * `multikey`: four needles with different keys in filler prose (RULER's `niah_multikey_1` shape), one asked;
  * `qa`: a RULER-QA prompt (SQuAD- or HotpotQA-like) followed by its answer.
Each row's `answer_start` is the character offset where its answer begins (0 for prose: no answer).
Document i of seed s depends only on (s, i) and the size. Sizes are in words (`n_words`, for tokenizer
training) or in tokens (each document the longest found within its target, usually 95-100% of it; the target is
`length`, or drawn per document from [`min_length`, `length`]).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

from refine.data import niah, qa
from refine.data.text import Fact, filler_sentence, filler_text, random_fact
from refine.data.tokenizer import count_tokens

FACT_RATE = 0.12  # probability that a prose sentence states a new fact
PARAGRAPH_RATE = 0.15
REDRAWS = 8  # draws of a document before giving up (`_fit`)


@dataclass
class CorpusConfig:
    """`refine data corpus --cfg` fields. `length` (tokens) needs a tokenizer; otherwise `n_words` is used."""

    num_train: int = 600
    num_val: int = 16
    length: int = 2048
    min_length: int | None = None  # None: every document fitted to `length`
    n_words: int = 1500
    seed: int = 0
    val_seed: int = 1
    style_weights: dict[str, float] = field(default_factory=lambda: {"prose": 0.6, "niah": 0.2, "qa": 0.2})
    source: str = "synthetic"  # or "hub" (paper config: SlimPajama-6B filtered to >= length tokens)
    hub_repo: str = "DKYoon/SlimPajama-6B"
    text_column: str = "text"


def _recall(rng: random.Random, fact: Fact) -> str:
    if rng.random() < 0.5:
        return f"Question: {fact.question} Answer: {fact.value}."
    return "Recall that " + fact.statement[0].lower() + fact.statement[1:]


def prose_document(rng: random.Random, n_words: int) -> tuple[str, int]:
    """Filler paragraphs with facts recalled at a uniformly drawn later point (>= 10% of the document on);
    no answer (offset 0)."""
    paragraphs, sentences, used, pending, keys = [], [], 0, [], set()
    while used < n_words:
        if pending and pending[0][0] <= used:
            sentence = _recall(rng, heapq.heappop(pending)[2])
        elif rng.random() < FACT_RATE:
            fact = random_fact(rng, "train")
            if fact.key in keys:
                continue
            keys.add(fact.key)
            sentence = fact.statement
            due = used + rng.uniform(0.1 * n_words, max(0.1 * n_words, n_words - used))
            heapq.heappush(pending, (due, len(keys), fact))
        else:
            sentence = filler_sentence(rng)
        sentences.append(sentence)
        used += len(sentence.split())
        if rng.random() < PARAGRAPH_RATE:
            paragraphs.append(" ".join(sentences))
            sentences = []
    paragraphs.append(" ".join(sentences))
    return "\n\n".join(p for p in paragraphs if p), 0


def niah_document(rng: random.Random, n_words: int) -> tuple[str, int]:
    """A NIAH sample of random shape (haystack, value type, 1-4 keys/values/queries) plus its answer."""
    shape = rng.choice([{}, {"num_k": 4}, {"num_v": 4}, {"num_q": 4}])
    variant = niah.NiahVariant(
        rng.choice(["noise", "essay", "needle"]),
        rng.choice(["words", "uuids"]),
        rng.choice(["numbers", "uuids", "words"]),
        **shape,
    )
    return _niah_text(rng, variant, n_words)


def needle_document(rng: random.Random, n_words: int) -> tuple[str, int]:
    """One key and its 7-digit number in the noise haystack (RULER's `niah_single_1` shape) plus the answer."""
    return _niah_text(rng, niah.VARIANTS["niah_single_1"], n_words)


def multikey_document(rng: random.Random, n_words: int) -> tuple[str, int]:
    """Four keys with a 7-digit number each in filler prose (RULER's `niah_multikey_1` shape), one of them asked,
    plus its answer: the lookup must tell the keys apart."""
    return _niah_text(rng, niah.VARIANTS["niah_multikey_1"], n_words)


def _niah_text(rng: random.Random, variant: niah.NiahVariant, n_words: int) -> tuple[str, int]:
    words_per_unit = {"essay": 1, "noise": len(niah.NOISE.split()), "needle": 12}[variant.haystack]
    units = max(max(variant.num_k, variant.num_q) * variant.num_v, (n_words - 60) // words_per_unit)
    essay = niah.essay_words(filler_text(rng, units)) if variant.haystack == "essay" else None
    text, answers, prefix = niah.niah_sample(rng, variant, units, essay, part="train", shuffle_seed=rng.getrandbits(32))
    context = f"{text} {prefix}"
    return f"{context} {', '.join(answers)}.", len(context)


def qa_document(rng: random.Random, n_words: int) -> tuple[str, int]:
    """A RULER-QA prompt with distractors up to `n_words` words, followed by the answer."""
    question, answers, docs, distractor = qa.EXAMPLES[rng.choice(qa.QA_TASKS)](rng, "train")
    used = sum(len(d.split()) for d in docs) + 60
    while used < n_words:
        docs.append(distractor())
        used += len(docs[-1].split()) + 2
    rng.shuffle(docs)
    prompt = qa.format_prompt(docs, question)
    return f"{prompt} {answers[0]}", len(prompt)


BUILDERS = {
    "prose": prose_document,
    "niah": niah_document,
    "needle": needle_document,
    "multikey": multikey_document,
    "qa": qa_document,
}
STYLES = tuple(BUILDERS)


def document(
    seed: int, index: int, n_words: int, style_weights: dict[str, float], redraw: int = 0
) -> tuple[str, str, int]:
    """(style, text, answer_start) of document `index` for `seed`, about `n_words` words; `redraw` > 0 draws
    another one."""
    rng = random.Random(f"corpus:{seed}:{index}" + (f":{redraw}" if redraw else ""))
    style = rng.choices(list(style_weights), weights=list(style_weights.values()))[0]
    if style not in BUILDERS:
        raise ValueError(f"unknown corpus style {style!r}; choose from {STYLES}")
    return (style, *BUILDERS[style](rng, n_words))


def _fit(seed: int, index: int, target: int, length: int, tokenizer, weights: dict[str, float], ratio: float) -> dict:
    """The longest document found within `target` tokens: resize in words until the tokens land in
    [95%, 100%] of it; when even the smallest size is too long, redraw (another style/shape) with the target
    moved toward `length` (reached by the fourth draw; later ones at `length`, e.g. for QA prompts of 256 tokens)."""
    best = None
    for redraw in range(REDRAWS):
        length_now = target + (length - target) * min(redraw, 3) // 3
        words = int(length_now / ratio)
        for _ in range(8):
            style, text, answer_start = document(seed, index, words, weights, redraw)
            n_tokens = count_tokens([text], tokenizer)[0]
            if n_tokens <= length_now and (best is None or n_tokens > best["n_tokens"]):
                best = {
                    "index": index,
                    "style": style,
                    "text": text,
                    "answer_start": answer_start,
                    "n_words": len(text.split()),
                    "n_tokens": n_tokens,
                }
            if 0.95 * length_now <= n_tokens <= length_now:
                return best
            words = int(words * 0.975 * length_now / n_tokens)
        if best is not None:
            return best
    raise ValueError(f"corpus document {index} (seed {seed}): no size found within {length} tokens")


def synthetic_corpus(
    num_docs: int,
    seed: int,
    *,
    tokenizer=None,
    length: int = 2048,
    min_length: int | None = None,
    n_words: int = 1500,
    style_weights: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Columns `index, style, text, answer_start, n_words` (+ `n_tokens` with a tokenizer: the longest document
    found within its target, usually 95-100% of it; the target is `length`, or with `min_length` drawn uniformly
    from [min_length, length] per document)."""
    weights = style_weights or CorpusConfig().style_weights
    if tokenizer is None:
        docs = (document(seed, i, n_words, weights) for i in range(num_docs))
        return pd.DataFrame(
            [
                {"index": i, "style": style, "text": text, "answer_start": start, "n_words": len(text.split())}
                for i, (style, text, start) in enumerate(docs)
            ]
        )
    sample = filler_text(random.Random(0), 2000)  # tokens per word of filler prose: the first size guess
    ratio = count_tokens([sample], tokenizer)[0] / len(sample.split())

    def target(i: int) -> int:
        return random.Random(f"length:{seed}:{i}").randint(min_length, length) if min_length else length

    return pd.DataFrame([_fit(seed, i, target(i), length, tokenizer, weights, ratio) for i in range(num_docs)])


def hub_corpus(
    tokenizer,
    num_docs: int,
    min_tokens: int,
    *,
    repo: str = "DKYoon/SlimPajama-6B",
    split: str = "train",
    text_column: str = "text",
) -> pd.DataFrame:
    """Paper configuration (spec 3.2): the first `num_docs` hub documents with >= `min_tokens` tokens
    (streamed; needs network). Columns `index, text, n_tokens`."""
    import datasets

    def long_docs() -> Iterator[dict]:
        for example in datasets.load_dataset(repo, split=split, streaming=True):
            n = count_tokens([example[text_column]], tokenizer)[0]
            if n >= min_tokens:
                yield {"text": example[text_column], "n_tokens": n}

    rows = [dict(index=i, **doc) for i, doc in zip(range(num_docs), long_docs())]
    if len(rows) < num_docs:
        raise ValueError(f"{repo}:{split}: only {len(rows)} documents have >= {min_tokens} tokens")
    return pd.DataFrame(rows)
