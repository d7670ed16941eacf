"""Reruns resume only the same run: a saved state is resumed when config, inputs and code are unchanged, and
removed (fresh start, different output) when the base checkpoint, the data, the tokenizer or the code changed;
the state is deleted once the outputs are written unless `keep_state`."""

from __future__ import annotations

import json
import logging
import shutil

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from refine.data.tokenizer import save_tokenizer, train_tokenizer
from refine.train import fingerprint as fingerprint_module
from refine.train import stages
from refine.train.config import MidConfig, PretrainConfig
from refine.version import code_version

MID = {"batch_size": 4, "max_length": 64, "steps": 2, "threads": 1, "optim": {"lr": 3e-3}, "val_before_train": False}
PRETRAIN = {"batch_size": 4, "max_length": 64, "steps": 2, "threads": 1, "model": {"hidden_size": 32, "num_heads": 2}}


@pytest.fixture(scope="module", autouse=True)
def fixed_code():
    """The training code's hash pinned, so files edited elsewhere while the tests run change nothing."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fingerprint_module, "command_hash", lambda group: "code-1")
        yield


def mid(toy, state, out, *, base=None, data=None, **cfg):
    stages.mid(
        MidConfig.from_dict({**MID, **cfg}),
        method="sft",
        base=base or toy["base"],
        data=data or toy["corpus"],
        out=out,
        metrics=out.with_suffix(".jsonl"),
        state=state,
    )


def pretrain(toy, state, out, *, tokenizer=None):
    stages.pretrain(
        PretrainConfig.from_dict({**PRETRAIN, "keep_state": True}),
        arch="deltanet",
        tokenizer=tokenizer or toy["tokenizer"],
        data=toy["pretrain"],
        out=out,
        metrics=out.with_suffix(".jsonl"),
        state=state,
    )


def same(a, b, load_weights) -> bool:
    wa, wb = load_weights(a), load_weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def saved(toy, tmp_path_factory):
    """A finished mid run whose state was kept: (state dir, output dir)."""
    root = tmp_path_factory.mktemp("saved")
    mid(toy, root / "state", root / "out", keep_state=True)
    return root / "state", root / "out"


def test_unchanged_inputs_resume_the_finished_state(toy, saved, tmp_path, caplog, load_weights):
    state = tmp_path / "state"
    shutil.copytree(saved[0], state)
    with caplog.at_level(logging.INFO):
        mid(toy, state, tmp_path / "out", keep_state=True)
    assert f"resumed from {state / 'step-2'} at step 2" in caplog.text
    assert same(saved[1], tmp_path / "out", load_weights)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all({k: r[k] for k in code_version()} == code_version() for r in rows)  # metrics carry the code


def perturbed_base(toy, root):
    base = root / "base2"
    shutil.copytree(toy["base"], base)
    weights = load_file(str(base / "model.safetensors"))
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1e-2
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    return {"base": base}


def reordered_data(toy, root):
    frame = pd.read_parquet(toy["corpus"])
    frame.iloc[::-1].reset_index(drop=True).to_parquet(root / "corpus2.parquet")
    return {"data": root / "corpus2.parquet"}


@pytest.mark.parametrize("change", [perturbed_base, reordered_data])
def test_a_changed_input_starts_fresh_and_changes_the_output(change, toy, saved, tmp_path, caplog, load_weights):
    state = tmp_path / "state"
    shutil.copytree(saved[0], state)
    changed = change(toy, tmp_path)
    with caplog.at_level(logging.INFO):
        mid(toy, state, tmp_path / "out", **changed)
    assert "starting fresh" in caplog.text and "resumed from" not in caplog.text
    assert not same(saved[1], tmp_path / "out", load_weights)
    mid(toy, tmp_path / "clean", tmp_path / "clean-out", **changed)  # the same inputs from no state at all
    assert same(tmp_path / "clean-out", tmp_path / "out", load_weights)
    assert not state.exists()  # deleted once the outputs were written (keep_state false)


def test_changed_code_starts_fresh(toy, saved, tmp_path, caplog, monkeypatch, load_weights):
    state = tmp_path / "state"
    shutil.copytree(saved[0], state)
    monkeypatch.setattr(fingerprint_module, "command_hash", lambda group: "code-2")
    with caplog.at_level(logging.INFO):
        mid(toy, state, tmp_path / "out")
    assert "starting fresh" in caplog.text and "resumed from" not in caplog.text
    assert same(saved[1], tmp_path / "out", load_weights)  # the same computation, redone


def test_a_changed_tokenizer_starts_pretraining_fresh(toy, tmp_path, caplog, load_weights):
    texts = [t for name in ("val", "pretrain") for t in pd.read_parquet(toy[name])["text"]]
    tokenizer = save_tokenizer(train_tokenizer(texts, vocab_size=300, min_frequency=1), tmp_path / "tok2")
    pretrain(toy, tmp_path / "state", tmp_path / "first")
    with caplog.at_level(logging.INFO):
        pretrain(toy, tmp_path / "state", tmp_path / "again")
    assert "resumed from" in caplog.text and same(tmp_path / "first", tmp_path / "again", load_weights)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        pretrain(toy, tmp_path / "state", tmp_path / "changed", tokenizer=tokenizer)
    assert "starting fresh" in caplog.text and "resumed from" not in caplog.text
    assert not same(tmp_path / "first", tmp_path / "changed", load_weights)
