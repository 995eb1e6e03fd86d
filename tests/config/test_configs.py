"""Every shipped config loads and names registered components with valid keys; the config layer's rules."""
import pytest
import yaml

from sonokit.config import load_config, spec
from sonokit.errors import ConfigError
from sonokit.experiments import AblationConfig, EnhanceBenchConfig, PretrainAblationConfig, SSLGridConfig

from ..conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def _experiment_cls(path):
    d = yaml.safe_load(path.read_text())
    if "variants" in d or "finetune" in d:
        return SSLGridConfig
    if "frames" in d or "enhancers" in d:
        return EnhanceBenchConfig
    if "downstream" in d:
        return PretrainAblationConfig
    if "rows" in d:
        return AblationConfig
    return None


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_its_specs_validate(path):
    cls = _experiment_cls(path)
    if cls is not None:
        load_config(path, cls=cls)
        return
    cfg = load_config(path)
    assert cfg.task in ("segment", "classify", "pretrain", "enhance"), path
    from sonokit.runs import builder

    builder(cfg.task).check(cfg)  # model / loss / method / encoder keys against the registries


def test_specs_merge_over_the_default_and_unknown_keys_are_named(tmp_path):
    cfg = load_config(None, ["model.decoder_channels=[8, 8, 8, 8, 8]"], task="segment")
    assert cfg.model == spec("resunet_resnet18", decoder_channels=[8, 8, 8, 8, 8])
    cfg = load_config(None, ["model={name: upernet, encoder: vit_tiny_patch16, channels: 32}"], task="segment")
    assert cfg.model["name"] == "upernet" and "decoder_channels" not in cfg.model
    from sonokit.runs import builder

    bad = load_config(None, ["model.decoder_chanels=[8]"], task="segment")
    with pytest.raises(ConfigError, match="unknown key 'model.decoder_chanels' for model 'resunet_resnet18'; "
                                          "did you mean 'decoder_channels'.*its parameters: "):
        builder("segment").check(bad)
    with pytest.raises(ConfigError, match="model must be a mapping with a name"):
        load_config(None, ["model=[1, 2]"], task="segment")
    with pytest.raises(ConfigError, match="needs a 'name'"):
        load_config(None, ["loss=[{weight: 1}]"], task="segment")


def test_a_config_for_another_task_names_the_command(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("task: pretrain\nname: x\n")
    with pytest.raises(ConfigError, match="is a 'pretrain' config; run it with `sonokit pretrain`"):
        load_config(p, task="segment")
    with pytest.raises(ConfigError, match="unknown task 'segmentt'"):
        load_config(None, ["task=segmentt"])


def test_bad_override_value_is_a_config_error():
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(None, ["optim.lr=[1,"])
    with pytest.raises(ConfigError, match="must look like key.subkey=value"):
        load_config(None, ["optim.lr"])
