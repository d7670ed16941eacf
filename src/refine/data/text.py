"""Synthetic text primitives: word lists split into train/eval halves, values, filler sentences, facts.

Words come from wonderwords' bundled lists, the same files RULER reads (NVIDIA/RULER
`scripts/data/synthetic/niah.py:96-101`). Entity names (nouns) are split by a hash into a training half
and an evaluation half, so evaluation keys and entities never occur as entities in training text.
"""

from __future__ import annotations

import functools
import hashlib
import random
import uuid
from dataclasses import dataclass
from typing import Literal

from wonderwords.random_word import _get_words_from_text_file

Part = Literal["train", "eval"]


@functools.cache
def word_list(name: Literal["nouns", "adjectives", "verbs"]) -> tuple[str, ...]:
    """A wonderwords list (lower-case single words only, sorted)."""
    words = _get_words_from_text_file(
        {"nouns": "nounlist.txt", "adjectives": "adjectivelist.txt", "verbs": "verblist.txt"}[name]
    )
    return tuple(sorted({w for w in words if w.isalpha() and w.islower()}))


def part_of(word: str) -> Part:
    """Which half a word belongs to: a fixed hash, independent of any seed."""
    return "eval" if hashlib.sha1(word.encode()).digest()[0] % 2 else "train"


@functools.cache
def entity_nouns(part: Part) -> tuple[str, ...]:
    """Nouns usable as entity names in `part` (disjoint halves)."""
    return tuple(w for w in word_list("nouns") if part_of(w) == part)


def key_word(rng: random.Random, part: Part) -> str:
    """RULER's `words` key, `adjective-noun` (niah.py:100), with the noun from `part`'s half."""
    return f"{rng.choice(word_list('adjectives'))}-{rng.choice(entity_nouns(part))}"


def random_value(rng: random.Random, kind: str, part: Part = "train") -> str:
    """RULER value types (niah.py:108-128): 7-digit `numbers`, `words`, `uuids`; plus `code`, `name`, `place`,
    `count` for the corpus facts."""
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))
    if kind == "words":
        return key_word(rng, part)
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind == "code":
        letters = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2))
        return f"{letters}-{rng.randint(1000, 9999)}"
    if kind == "name":
        return f"{rng.choice(word_list('adjectives')).title()} {rng.choice(entity_nouns(part)).title()}"
    if kind == "place":
        return rng.choice(["Port {}", "{}ville", "Mount {}", "{} Harbor", "New {}"]).format(
            rng.choice(entity_nouns(part)).title()
        )
    if kind == "count":
        return str(rng.randint(100, 99999))
    raise ValueError(f"unknown value type {kind!r}")


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


_FILLER = (
    "The {a1} {n1} {v3} the {a2} {n2}.",
    "{A1n1} can {v} {a2n2}.",
    "Every {n1} wants to {v} the {a2} {n2}.",
    "When the {n1} {v3}, the {n2} becomes {a1}.",
    "It is {a1} to {v} {a2n2} before the {n3} arrives.",
    "The {n1} was {a1}, and the {n2} was {a2}.",
    "Nobody knew why the {a1} {n1} would {v} every {n2}.",
    "Near the {n3}, {a1n1} and {a2n2} {v} together.",
)


def filler_sentence(rng: random.Random) -> str:
    """One templated sentence of random (real) words: local structure without long-range content."""
    nouns, adjs = word_list("nouns"), word_list("adjectives")
    n1, n2, n3 = rng.choice(nouns), rng.choice(nouns), rng.choice(nouns)
    a1, a2 = rng.choice(adjs), rng.choice(adjs)
    v = rng.choice(word_list("verbs"))
    a1n1 = _article(f"{a1} {n1}")
    fields = {
        "n1": n1,
        "n2": n2,
        "n3": n3,
        "a1": a1,
        "a2": a2,
        "v": v,
        "v3": _third_person(v),
        "a1n1": a1n1,
        "A1n1": a1n1[0].upper() + a1n1[1:],
        "a2n2": _article(f"{a2} {n2}"),
    }
    return rng.choice(_FILLER).format(**fields)


def filler_text(rng: random.Random, n_words: int) -> str:
    """Paragraphs of filler sentences totalling at least `n_words` words (an offline 'essay' haystack)."""
    paragraphs, sentences, count = [], [], 0
    while count < n_words:
        sentences.append(filler_sentence(rng))
        count += len(sentences[-1].split())
        if rng.random() < 0.15:
            paragraphs.append(" ".join(sentences))
            sentences = []
    paragraphs.append(" ".join(sentences))
    return "\n\n".join(p for p in paragraphs if p)


@dataclass(frozen=True)
class FactKind:
    """A fact about an entity: how it is stated, asked and answered; `value` is a `random_value` type."""

    value: str
    statement: str
    question: str


FACT_KINDS = (
    FactKind("code", "The access code for the {key} is {value}.", "What is the access code for the {key}?"),
    FactKind("name", "The {key} was founded by {value}.", "Who founded the {key}?"),
    FactKind("place", "The {key} is located in {value}.", "Where is the {key} located?"),
    FactKind("count", "The {key} has {value} members.", "How many members does the {key} have?"),
)


@dataclass(frozen=True)
class Fact:
    """One stated fact: `kind` about entity `key` with `value`."""

    kind: FactKind
    key: str
    value: str

    @property
    def statement(self) -> str:
        return self.kind.statement.format(key=self.key, value=self.value)

    @property
    def question(self) -> str:
        return self.kind.question.format(key=self.key)


def random_fact(rng: random.Random, part: Part, key: str | None = None) -> Fact:
    """A fact of a random kind about `key` (default: a fresh `adjective noun` entity of `part`)."""
    kind = rng.choice(FACT_KINDS)
    key = key or f"{rng.choice(word_list('adjectives'))} {rng.choice(entity_nouns(part))}"
    return Fact(kind, key, random_value(rng, kind.value, part))
