"""sonokit configs: typed dataclasses from YAML, with dotted overrides; no torch is imported here.

>>> cfg = load_config("configs/busi_resunet18_cpu.yaml", ["optim.lr=3e-4"])   # doctest: +SKIP
>>> cfg.model["name"], cfg.optim.lr                                             # doctest: +SKIP
('resunet_resnet18', 0.0003)
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .core import Spec, apply_overrides, build, dump_yaml, from_dict, read_yaml, spec, to_dict
from .enhance import BlurConfig, DegradeConfig, EnhanceDataConfig, NoiseConfig, TargetConfig
from .schema import AugmentConfig, DataConfig, InitConfig, OptimConfig, ParamGroup, StageConfig, TrainerConfig
from .tasks import CONFIGS, ClassifyConfig, EnhanceConfig, PretrainConfig, SegmentConfig

COMMANDS = {"segment": "sonokit train segment", "classify": "sonokit train classify", "pretrain": "sonokit pretrain",
            "enhance": "sonokit train enhance"}


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None, *,
                task: str | None = None, cls: type | None = None):
    """Load a YAML config (or the defaults when ``path`` is None) and apply dotted ``overrides``.

    The config class is ``cls`` when given (experiment configs), else the one for the file's ``task:`` key,
    else for ``task`` (what the calling command trains), else ``segment``. A file written for another task
    than the command's is an error naming the command to use.
    """
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    source = str(path) if path is not None else "config"
    if cls is None:
        declared = data.get("task")
        if declared is not None and declared not in CONFIGS:
            raise ConfigError(f"{source}: unknown task '{declared}'; expected one of {', '.join(CONFIGS)}")
        if task is not None and declared is not None and declared != task:
            raise ConfigError(f"{source} is a '{declared}' config; run it with `{COMMANDS[declared]}`, "
                              f"not `{COMMANDS[task]}`")
        cls = CONFIGS[declared or task or "segment"]
    return build(cls, data, source=source)


def config_from_dict(data: dict, *, task: str | None = None):
    """A task config from an already-parsed mapping (e.g. a run folder's ``config.yaml``)."""
    t = data.get("task") or task or "segment"
    if t not in CONFIGS:
        raise ConfigError(f"unknown task '{t}'; expected one of {', '.join(CONFIGS)}")
    return build(CONFIGS[t], data)


__all__ = ["load_config", "config_from_dict", "from_dict", "to_dict", "dump_yaml", "apply_overrides", "read_yaml",
           "build", "Spec", "spec", "CONFIGS", "COMMANDS", "SegmentConfig", "ClassifyConfig", "PretrainConfig",
           "EnhanceConfig", "DataConfig", "OptimConfig", "ParamGroup", "InitConfig", "AugmentConfig",
           "TrainerConfig", "StageConfig", "EnhanceDataConfig", "TargetConfig", "BlurConfig", "NoiseConfig",
           "DegradeConfig"]
