"""RULER needle-in-a-haystack generator (the 8 lm-eval `niah_*` variants), offline.

Follows NVIDIA/RULER `scripts/data/synthetic/niah.py` (HEAD c3f5e3b) and lm-eval 0.4.13
`lm_eval/tasks/ruler/{niah_utils,prepare_niah}.py`; line numbers below are RULER's. Rows use lm-eval's
RULER fields (`index, input, outputs, length, max_length, gen_prefix`) plus RULER's `answer_prefix` and the
task name, so a local lm-eval YAML (`doc_to_text: "{{input}}"`, `gen_prefix: "{{gen_prefix}}"`,
`string_match_all`) scores them as the built-in tasks. Offline changes: the "essay" haystack is any local
text (default: the synthetic filler prose), keys use the evaluation half of the nouns, sentences are split
by a regex instead of nltk, and each (task, length) has its own seeded RNG.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from refine.data.text import Part, filler_text, random_value
from refine.data.tokenizer import count_tokens

# RULER scripts/data/synthetic/constants.py:27-28 (lm-eval niah_utils.py:21).
TEMPLATE = (
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
    "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?"
)
ANSWER_PREFIX = "The special magic {type_needle_v} for {query} mentioned in the provided text are"
NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."  # niah.py:83
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."  # :89
DEPTHS = [int(d) for d in np.round(np.linspace(0, 100, num=40, endpoint=True))]  # :105
TOKENS_TO_GENERATE = 128  # constants.py:26; lm-eval max_gen_toks 128

Haystack = Literal["noise", "essay", "needle"]


@dataclass(frozen=True)
class NiahVariant:
    """One RULER NIAH configuration (RULER `scripts/synthetic.yaml:15-93`; lm-eval `niah_utils.py:33-177`)."""

    haystack: Haystack
    type_k: str = "words"
    type_v: str = "numbers"
    num_k: int = 1
    num_v: int = 1
    num_q: int = 1


VARIANTS: dict[str, NiahVariant] = {
    "niah_single_1": NiahVariant("noise"),
    "niah_single_2": NiahVariant("essay"),
    "niah_single_3": NiahVariant("essay", type_v="uuids"),
    "niah_multikey_1": NiahVariant("essay", num_k=4),
    "niah_multikey_2": NiahVariant("needle"),
    "niah_multikey_3": NiahVariant("needle", type_k="uuids", type_v="uuids"),
    "niah_multivalue": NiahVariant("essay", num_v=4),
    "niah_multiquery": NiahVariant("essay", num_q=4),
}

# Paper Table 3 columns -> lm-eval task (spec 7.4: S inferred, MK probable, MQ/MV by name).
TABLE3_TASKS = {
    "S-NIAH": "niah_single_1",
    "MK-NIAH": "niah_multikey_1",
    "MQ-NIAH": "niah_multiquery",
    "MV-NIAH": "niah_multivalue",
}


@dataclass
class NiahConfig:
    """`refine data niah --cfg` fields."""

    tasks: list[str] = field(default_factory=lambda: list(VARIANTS))
    lengths: list[int] = field(default_factory=lambda: [1024, 2048, 4096])
    num_samples: int = 25
    seed: int = 42
    tokens_to_generate: int = TOKENS_TO_GENERATE
    essay_seed: int = 4242  # seed of the synthetic essay haystack (when no essay file is given)
    essay_words: int = 20000


def essay_words(text: str) -> list[str]:
    """Whitespace-normalised words of an essay haystack (niah.py:87)."""
    return re.sub(r"\s+", " ", text).strip().split(" ")


def default_essay(seed: int, n_words: int) -> list[str]:
    """The offline essay haystack: synthetic filler prose (no facts, no needles)."""
    return essay_words(filler_text(random.Random(seed), n_words))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _essay_sentences(words: Sequence[str], num_haystack: int) -> list[str]:
    """The first `num_haystack` words (repeated if short, niah.py:148-154), split into sentences."""
    repeats = math.ceil(num_haystack / len(words))
    return _SENTENCE_END.split(" ".join((list(words) * repeats)[:num_haystack]).strip())


def _context(rng: random.Random, v: NiahVariant, needles: list[str], num_haystack: int, essay, part: Part) -> str:
    """Insert the needles into the haystack (niah.py:146-182)."""
    if v.haystack == "essay":
        sents = _essay_sentences(essay, num_haystack)
        cuts = [int(len(sents) * d / 100) for d in rng.sample(DEPTHS, len(needles))]
        bounds = [0, *sorted(cuts), len(sents)]
        pieces = []
        for i, needle in enumerate(needles):
            pieces += [" ".join(sents[bounds[i] : bounds[i + 1]]), needle]
        pieces.append(" ".join(sents[bounds[-2] :]))
        return " ".join(pieces)
    if v.haystack == "noise":
        lines = [NOISE] * num_haystack
    else:
        lines = [
            NEEDLE.format(
                type_needle_v=v.type_v,
                key=random_value(rng, v.type_k, part),
                value=random_value(rng, v.type_v, part),
            )
            for _ in range(num_haystack)
        ]
    for index, needle in zip(sorted(rng.sample(range(num_haystack), len(needles)), reverse=True), needles):
        lines.insert(index, needle)
    return "\n".join(lines)


def niah_sample(
    rng: random.Random,
    v: NiahVariant,
    num_haystack: int,
    essay: Sequence[str] | None = None,
    part: Part = "eval",
    shuffle_seed: int = 42,
) -> tuple[str, list[str], str]:
    """One sample (niah.py:130-206): (input without answer prefix, answers, gen_prefix)."""
    num_k = max(v.num_k, v.num_q)  # niah.py:77
    keys, values, needles = [], [], []
    for _ in range(num_k):
        keys.append(random_value(rng, v.type_k, part))
        values.append([random_value(rng, v.type_v, part) for _ in range(v.num_v)])
        needles += [NEEDLE.format(type_needle_v=v.type_v, key=keys[-1], value=x) for x in values[-1]]
    random.Random(shuffle_seed).shuffle(needles)  # niah.py:144 reseeds the shuffle every sample
    context = _context(rng, v, needles, num_haystack, essay, part)
    picked = rng.sample(range(num_k), v.num_q)  # niah.py:186-189
    queries = [keys[i] for i in picked]
    answers = [a for i in picked for a in values[i]]
    query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]
    template, prefix, type_v = TEMPLATE, ANSWER_PREFIX, v.type_v
    if v.num_q * v.num_v == 1:  # singular wording, niah.py:193-198
        template = template.replace("Some", "A").replace("are all", "is").replace("are", "is")
        prefix, type_v = prefix.replace("are", "is"), type_v[:-1]
    return (
        template.format(type_needle_v=type_v, context=context, query=query),
        answers,
        prefix.format(type_needle_v=type_v, query=query),
    )


def _increment(v: NiahVariant, max_length: int) -> int:
    """Haystack step (niah.py:214-222): 25 lines (5 below 4096 tokens); 500 essay words, capped here at
    max_length // 16 so that the smallest essay haystack fits the tiny 1K-4K lengths (= RULER's from 8K)."""
    if v.haystack == "essay":
        return min(500, max_length // 16)
    return 5 if max_length < 4096 else 25


def generate_niah(
    task: str,
    tokenizer,
    max_length: int,
    num_samples: int,
    *,
    essay: Sequence[str] | None = None,
    seed: int = 42,
    tokens_to_generate: int = TOKENS_TO_GENERATE,
    part: Part = "eval",
) -> list[dict]:
    """`num_samples` rows of `task` at `max_length` tokens.

    The haystack size is the largest that fits by binary search (niah.py:224-258); each sample then shrinks
    by one increment until tokens(input + " " + gen_prefix) + tokens_to_generate <= max_length (:263-273).
    """
    v = VARIANTS[task]
    if v.haystack == "essay" and not essay:
        raise ValueError(f"{task}: the essay haystack needs text (pass `essay` words)")
    rng = random.Random(f"{seed}:{task}:{max_length}")

    def fits(n: int) -> tuple[bool, tuple[str, list[str], str], int]:
        sample = niah_sample(rng, v, n, essay, part, seed)
        length = count_tokens([f"{sample[0]} {sample[2]}"], tokenizer)[0] + tokens_to_generate
        return length <= max_length, sample, length

    inc = _increment(v, max_length)
    per_unit = count_tokens([niah_sample(rng, v, inc, essay, part, seed)[0]], tokenizer)[0] / inc
    lo, hi, best = inc, max(int(max_length / per_unit * 3), 2 * inc), None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(mid)[0]:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best is None:
        raise ValueError(
            f"{task}: even {inc} haystack units exceed max_length={max_length} "
            f"with {tokens_to_generate} tokens to generate"
        )
    rows = []
    for index in range(num_samples):
        n = best
        ok, (text, answers, gen_prefix), length = fits(n)
        while not ok and n > inc:
            n -= inc
            ok, (text, answers, gen_prefix), length = fits(n)
        if not ok:
            raise ValueError(f"{task}: sample {index} does not fit max_length={max_length}")
        rows.append(
            {
                "index": index,
                "input": text,
                "outputs": answers,
                "length": length,
                "max_length": max_length,
                "gen_prefix": gen_prefix,
                "answer_prefix": " " + gen_prefix,
                "task": task,
            }
        )
    return rows
