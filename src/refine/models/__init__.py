"""Fast-weight language models (DeltaNet, LaCT) with an own cached ``generate``.

Importing this package registers the model types with transformers' ``AutoConfig`` / ``AutoModelForCausalLM``.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from refine.models.cache import FastWeightCache
from refine.models.deltanet import DeltaNetConfig, DeltaNetForCausalLM
from refine.models.lact import LaCTConfig, LaCTForCausalLM
from refine.ops.fla import AFTER_IMPORT


def register_auto_classes() -> None:
    """(Re-)register our model types with ``AutoConfig`` / ``AutoModelForCausalLM``.

    Any fla import also imports ``fla.models`` (fla/__init__.py:38-39), which registers fla's own "delta_net"
    classes over ours; :mod:`refine.ops.fla` therefore calls this again after each import of fla.
    """
    for config, model in ((DeltaNetConfig, DeltaNetForCausalLM), (LaCTConfig, LaCTForCausalLM)):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoModelForCausalLM.register(config, model, exist_ok=True)


register_auto_classes()
AFTER_IMPORT.append(register_auto_classes)

__all__ = [
    "DeltaNetConfig",
    "DeltaNetForCausalLM",
    "FastWeightCache",
    "LaCTConfig",
    "LaCTForCausalLM",
    "register_auto_classes",
]
