"""Byte-level BPE tokenizer trained on the corpus text, saved in Hugging Face format.

Recipe (spec 13.5): `tokenizers` BPE + ByteLevel pre-tokenizer/decoder + BpeTrainer
with the byte alphabet, wrapped in `PreTrainedTokenizerFast`. No BOS is ever added (spec 3.1, 10.13) and
pad = EOS when the tokenizer has no pad token (spec 3.1, ReFINE `utils/tokenizer.py:21-33`). Token counting lives
here too; the module imports `transformers` (and so torch) only when a tokenizer is trained or loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from refine.atomic import atomic_path

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"


@dataclass
class TokenizerConfig:
    """`refine data tokenizer --cfg` fields."""

    vocab_size: int = 4096
    min_frequency: int = 2
    text_column: str = "text"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`; EOS `<|endoftext|>` (id 0) is also pad; no BOS, no post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN, clean_up_tokenization_spaces=False
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, out_dir: str | Path) -> Path:
    """`save_pretrained` into `out_dir` atomically (the directory appears complete or not at all)."""
    with atomic_path(out_dir) as tmp:
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def load_tokenizer(path_or_id: str | Path) -> PreTrainedTokenizerBase:
    """`AutoTokenizer.from_pretrained`, then pad = EOS if the tokenizer has no pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path_or_id))
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer {path_or_id}: has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tokenize(texts: Sequence[str], tokenizer) -> list[list[int]]:
    """Token ids of each text, without special tokens."""
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def count_tokens(texts: Sequence[str], tokenizer) -> list[int]:
    """Number of tokens of each text, without special tokens."""
    return [len(ids) for ids in tokenize(texts, tokenizer)]
