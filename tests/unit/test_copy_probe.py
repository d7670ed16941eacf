"""scripts/copy_probe.py: the tiny DeltaNet learns to copy when copying is easy (small vocabulary, dense targets).

Guards the models' learning path end to end (delta rule, short convolutions, gradients): a regression that breaks
in-context copying shows here as a repeat loss stuck at ln(vocab)."""

import importlib.util
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "copy_probe.py"


def test_deltanet_copies_a_repeated_sequence_at_vocab_64():
    spec = importlib.util.spec_from_file_location("copy_probe", SCRIPT)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    *_, (step, first, repeat) = probe.copy_losses("deltanet", 64, 16, 32, 250, 3e-3, {}, every=250)
    assert step == 249
    assert abs(first - math.log(64)) < 0.2  # nothing to copy in the first showing: chance
    assert repeat < 0.5 * math.log(64)  # the repeat is copied (measured: 0.46 nats)
