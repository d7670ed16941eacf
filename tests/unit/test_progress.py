"""Progress of long jobs: log lines when stderr is not a terminal (Snakemake, SLURM), a tqdm bar when it is."""

from __future__ import annotations

import io
import json
import logging
import re

from refine.logs import Progress, logged
from refine.train import stages
from refine.train.config import MidConfig

LINE = re.compile(
    r"^(?P<desc>.+): step (?P<done>\d+)/(?P<total>\d+) \(\d+%\)(?P<post>.*) \| "
    r"\S+ step/s, elapsed \d+:\d\d:\d\d, ETA (\d+:\d\d:\d\d|\?)$"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "refine.progress"]


def test_a_line_every_n_steps_and_at_the_end(caplog):
    caplog.set_level(logging.INFO, logger="refine.progress")
    with Progress(10, desc="job", every=4, stream=io.StringIO()) as bar:
        for step in range(10):
            bar.set_postfix({"loss": f"{3 - step / 10:.4g}"})
            bar.update(1)
    got = [LINE.match(line) for line in lines(caplog)]
    assert all(got) and [int(m["done"]) for m in got] == [1, 5, 9, 10]  # first, every 4 since, last
    assert got[-1]["post"] == " loss=2.1" and got[-1]["total"] == "10"


def test_a_line_every_m_seconds_and_resumed_runs_count_from_their_start(caplog):
    caplog.set_level(logging.INFO, logger="refine.progress")
    bar = Progress(100, initial=40, desc="job", every=1000, seconds=0.0, stream=io.StringIO())
    bar.update(1)
    bar.update(1)
    assert [LINE.match(x)["done"] for x in lines(caplog)] == ["41", "42"]


def test_terminal_gets_the_bar_not_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="refine.progress")
    tty = Terminal()
    with Progress(3, desc="job", stream=tty) as bar:
        bar.update(3)
    assert lines(caplog) == [] and "3/3" in tty.getvalue()
    with Progress(3, desc="off", enabled=False, stream=io.StringIO()) as bar:  # ranks other than 0
        bar.update(3)
    assert lines(caplog) == []


def test_cells_are_logged_with_throughput(caplog):
    caplog.set_level(logging.INFO, logger="refine.progress")
    assert list(logged(["a", "b"], "evaluate qa m")) == ["a", "b"]
    got = lines(caplog)
    assert [x.split(" (")[0] for x in got] == ["evaluate qa m: cell 1/2", "evaluate qa m: cell 2/2"]
    assert all(" cell/s, elapsed " in x for x in got)


class WorkingMetrics(logging.Handler):
    """At each progress line, the train steps the working metrics file holds (it is read while the job runs)."""

    def __init__(self, path):
        super().__init__()
        self.path, self.seen = path, []

    def emit(self, record):
        if record.name == "refine.progress":
            rows = [json.loads(x) for x in self.path.read_text().splitlines()]
            self.seen.append([r["step"] for r in rows if r["split"] == "train"])


def test_training_logs_step_loss_reward_and_tokens_per_s(toy, tmp_path, caplog):
    """A tiny REFINE mid-training run under pytest (stderr captured: not a terminal)."""
    caplog.set_level(logging.INFO)
    working = WorkingMetrics(tmp_path / "state" / "metrics.jsonl")
    logging.getLogger("refine.progress").addHandler(working)
    cfg = {"batch_size": 4, "max_length": 64, "steps": 3, "threads": 1, "refine": {"mini_batch_size": 2}}
    try:
        stages.mid(MidConfig.from_dict(cfg), method="refine", base=toy["base"], data=toy["corpus"], val_data=None,
                   out=tmp_path / "mid", metrics=tmp_path / "metrics.jsonl", state=tmp_path / "state")  # fmt: skip
    finally:
        logging.getLogger("refine.progress").removeHandler(working)
    got = [LINE.match(x) for x in lines(caplog)]
    assert all(got) and [m["done"] for m in got] == ["1", "2", "3"]
    for m in got:
        post = dict(kv.split("=") for kv in m["post"].split())
        assert set(post) == {"loss", "reward", "tok/s"} and float(post["tok/s"]) > 0
    # the working metrics file is named in the log and already holds each logged step
    assert any(str(working.path) in r.getMessage() for r in caplog.records if r.name == "refine.train.metrics")
    assert working.seen == [[1], [1, 2], [1, 2, 3]]
