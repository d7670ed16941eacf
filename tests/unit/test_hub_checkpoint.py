"""`refine data checkpoint` downloads the commit its revision resolves to and records it (hub mocked: no network)."""

from __future__ import annotations

import argparse
import json
import logging
import stat
import types

import huggingface_hub

from refine.commands.data import run_checkpoint

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub(monkeypatch, downloads: list):
    def model_info(self, repo_id, revision=None):
        return types.SimpleNamespace(sha=COMMIT if revision in ("main", COMMIT) else None)

    def snapshot_download(repo_id, revision, local_dir):
        downloads.append((repo_id, revision))
        (local_dir / ".cache").mkdir(parents=True)
        (local_dir / "model.safetensors").write_bytes(b"w")
        (local_dir / "model.safetensors").chmod(0o600)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


def test_a_branch_downloads_its_current_commit_and_says_what_to_pin(monkeypatch, tmp_path, caplog):
    downloads = []
    fake_hub(monkeypatch, downloads)
    out = tmp_path / "base"
    with caplog.at_level(logging.WARNING):
        run_checkpoint(argparse.Namespace(repo="org/model", revision="main", out=str(out)))
    assert downloads == [("org/model", COMMIT)] and f"pin base.revision to {COMMIT}" in caplog.text
    source = json.loads((out / "refine_source.json").read_text())
    assert source == {"repo": "org/model", "revision": "main", "commit": COMMIT}
    assert stat.S_IMODE((out / "model.safetensors").stat().st_mode) & 0o040  # group-readable


def test_a_pinned_commit_is_downloaded_without_warning(monkeypatch, tmp_path, caplog):
    downloads = []
    fake_hub(monkeypatch, downloads)
    with caplog.at_level(logging.WARNING):
        run_checkpoint(argparse.Namespace(repo="org/model", revision=COMMIT, out=str(tmp_path / "base")))
    assert downloads == [("org/model", COMMIT)] and "pin" not in caplog.text
