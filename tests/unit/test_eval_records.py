"""Evaluation records: design.md format, atomic write, reading back as a DataFrame."""

import json

import pytest

from refine.evaluate import records as R


def _fields(**over):
    fields = {
        "experiment": "default",
        "arch": "deltanet",
        "model": "mid-refine-s0",
        "stage": "mid",
        "method": "refine",
        "seed": 0,
        "family": "niah",
        "task": "niah_single_1",
        "length": 1024,
        "length_label": "1K",
        "ttt": "none",
        "metric": "string_match_all",
        "score": 50.0,
        "n": 2,
        "examples": [
            {"index": 0, "prediction": "7", "references": ["7"], "score": 1.0},
            {"index": 1, "prediction": "x", "references": ["8"], "score": 0.0},
        ],
    }
    return fields | over


def test_round_trip(tmp_path):
    path = tmp_path / "default/evals/deltanet/mid-refine-s0/niah/niah_single_1_1024_ttt-none.json"
    written = R.write_record(path, config={"max_gen_toks": 128}, **_fields())
    on_disk = json.loads(path.read_text())
    assert on_disk == written
    assert next(iter(on_disk)) == "schema" and on_disk["schema"] == 1 and list(on_disk)[-1] == "examples"
    assert on_disk["config_hash"] == R.config_hash({"max_gen_toks": 128}) and len(on_disk["config_hash"]) == 40
    assert on_disk["created"].startswith("20")
    R.write_record(tmp_path / "b.json", **_fields(task="niah_multikey_1", score=100.0))
    (tmp_path / "not_a_record.json").write_text("[1, 2]")
    frame = R.read_records(tmp_path)
    assert sorted(frame["task"]) == ["niah_multikey_1", "niah_single_1"] and "examples" not in frame
    assert len(R.read_records(tmp_path, examples=True).iloc[0]["examples"]) == 2
    assert R.read_records(tmp_path / "empty").empty


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    R.write_record(path, **_fields())
    before = path.read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(R.json, "dump", boom)
    with pytest.raises(RuntimeError):
        R.write_record(path, **_fields(score=0.0))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def test_bad_records_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"missing field\(s\) \['n'\]"):
        R.write_record(tmp_path / "r.json", **{k: v for k, v in _fields().items() if k != "n"})
    with pytest.raises(ValueError, match="ttt 'maybe'"):
        R.write_record(tmp_path / "r.json", **_fields(ttt="maybe"))


def test_corrupt_record_names_its_file(tmp_path):
    R.write_record(tmp_path / "good.json", **_fields())
    (tmp_path / "bad.json").write_text('{"schema": 1, "score": ')
    with pytest.raises(ValueError, match=r"bad\.json: not a valid JSON record"):
        R.read_records(tmp_path)
