"""Byte-level BPE: trains, saves in HF format, reloads via AutoTokenizer, round-trips, no BOS, pad = EOS."""

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from refine.data.corpus import synthetic_corpus
from refine.data.tokenizer import EOS_TOKEN, load_tokenizer, save_tokenizer, train_tokenizer

TEXT = "One of the special magic numbers for tart-poor is: 1234567.\n\nUnicode survives: naïve café — ok."


def test_train_save_reload_round_trip(tmp_path):
    tok = train_tokenizer(synthetic_corpus(30, 0, n_words=600)["text"], vocab_size=1024)
    assert len(tok) == 1024
    save_tokenizer(tok, tmp_path / "tok")
    auto = AutoTokenizer.from_pretrained(tmp_path / "tok")
    ids = auto(TEXT, add_special_tokens=False)["input_ids"]
    assert ids == tok(TEXT, add_special_tokens=False)["input_ids"]
    assert auto.decode(ids) == TEXT
    assert auto(TEXT)["input_ids"] == ids  # no BOS/EOS added even with special tokens on
    assert auto.eos_token == auto.pad_token == EOS_TOKEN and auto.bos_token is None


def test_load_tokenizer_sets_pad_to_eos(tmp_path):
    tok = train_tokenizer(["plain text for a tiny vocabulary"] * 4, vocab_size=300)
    bare = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token=EOS_TOKEN)
    bare.save_pretrained(tmp_path / "bare")
    assert AutoTokenizer.from_pretrained(tmp_path / "bare").pad_token is None
    loaded = load_tokenizer(tmp_path / "bare")
    assert loaded.pad_token == EOS_TOKEN and loaded.pad_token_id == loaded.eos_token_id
