"""`--cfg` parsing and dataclass construction reject bad input with messages that name it."""

import dataclasses

import pytest

from refine.config import from_dict, load_cfg


@dataclasses.dataclass
class Example:
    lr: float = 1e-3
    steps: int = 2


def test_load_cfg_json_and_yaml(tmp_path):
    assert load_cfg('{"lr": 0.5}') == {"lr": 0.5}
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.25\nsteps: 3\n")
    assert load_cfg(str(path)) == {"lr": 0.25, "steps": 3}
    assert load_cfg(None) == {}


def test_load_cfg_rejects_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_cfg("nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_cfg(str(path))


def test_from_dict_names_unknown_keys():
    assert from_dict(Example, {"lr": 0.1}) == Example(lr=0.1)
    with pytest.raises(ValueError, match=r"Example: unknown key\(s\) \['setps'\]"):
        from_dict(Example, {"setps": 3})
