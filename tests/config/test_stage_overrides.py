"""Overrides of multi-stage configs (the command line wins in every stage; STAGE:key=value for one stage), optional
parameter patterns, and the SF-RecSAM presets that use both."""
import pytest
import torch
from torch import nn

from sonokit.config import apply_overrides, load_config
from sonokit.errors import ConfigError
from sonokit.tasks.params import apply_freeze, param_groups

from ..conftest import REPO

PRESETS = [REPO / "configs" / "sfrecsam_busi_cpu.yaml", REPO / "configs" / "sfrecsam_busi_paper.yaml"]


def _staged() -> dict:
    return {"optim": {"epochs": 5, "lr": 1e-3},
            "stages": [{"name": "a", "set": {"optim.lr": 1e-4}},
                       {"name": "b", "set": {"optim.epochs": 2, "model.mc_samples": 8}}]}


def test_an_override_reaches_the_stages_that_set_the_key_and_stage_colon_key_one_stage():
    d = apply_overrides(_staged(), ["optim.epochs=1", "b:model.mc_samples=2", "a:optim.freeze=['*']"])
    assert d["optim"]["epochs"] == 1
    assert d["stages"][0]["set"] == {"optim.lr": 1e-4, "optim.freeze": ["*"]}  # a did not set epochs: inherits 1
    assert d["stages"][1]["set"] == {"optim.epochs": 1, "model.mc_samples": 2}
    d = apply_overrides(_staged(), {"optim.lr": 0.5})
    assert d["optim"]["lr"] == 0.5 and d["stages"][0]["set"]["optim.lr"] == 0.5 and "optim.lr" not in d["stages"][1]["set"]


def test_stage_overrides_name_what_is_wrong():
    with pytest.raises(ConfigError, match="no stage 'c' .*its stages: a, b"):
        apply_overrides(_staged(), ["c:optim.epochs=1"])
    with pytest.raises(ConfigError, match="no stage 'a' .*its stages: none"):
        apply_overrides({"optim": {}}, ["a:optim.epochs=1"])
    with pytest.raises(ConfigError, match="name a key after the stage"):
        apply_overrides(_staged(), ["a:=1"])


def test_stages_are_checked_before_the_first_trains(tmp_path):
    from sonokit.runs import fit

    cfg = load_config(PRESETS[0], ["corrector:model.mc_sample=2", f"out_dir={tmp_path / 'r'}"])
    with pytest.raises(ConfigError, match="stage 'corrector': unknown key 'model.mc_sample' for model 'sfrecsam'"):
        fit(cfg, log=None)
    assert not (tmp_path / "r").exists()  # nothing trained, nothing written


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.adapter, self.head = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1)


def test_optional_patterns_may_match_nothing_others_may_not():
    counts = apply_freeze(_Net(), ["encoder.*", "optional:corrector.*"], ["optional:*fusion*"])
    assert counts["trainable"] == 6 + 3
    with pytest.raises(ConfigError, match="'corrector.\\*' matches no parameter.*'optional:PATTERN'"):
        apply_freeze(_Net(), ["corrector.*"])
    with pytest.raises(ConfigError, match="nothing after 'optional:'"):
        apply_freeze(_Net(), ["optional:"])
    net = _Net()
    groups = param_groups(net, lr=1.0, weight_decay=0.0, groups=[{"params": ["optional:*adapter*"], "lr": 0.1}])
    assert groups[0]["lr"] == 0.1 and [id(p) for p in groups[0]["params"]] == [id(p) for p in net.adapter.parameters()]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_sfrecsam_presets_load_validate_and_take_overrides(path):
    from sonokit.runs import builder

    cfg = load_config(path, ["optim.epochs=1", "corrector:optim.lr=0.01"])
    assert cfg.model["name"] == "sfrecsam" and [s.name for s in cfg.stages] == ["base", "corrector"]
    base, corr = (s.set for s in cfg.stages)
    assert base["model.mc_samples"] == 0 and "optional:*fusion*" in base["optim.unfreeze"]
    assert corr["optim.freeze"] == ["*"] and corr["optim.unfreeze"] == ["corrector.*"]
    assert corr["optim.epochs"] == 1 and corr["optim.lr"] == 0.01 and cfg.optim.epochs == 1
    assert [t["name"] for t in corr["loss"]] == ["sam_correction", "sam_uncertainty_bce"]
    builder("segment").check(cfg)
    assert ("paper" in path.name) == (cfg.model["sam_variant"] == "vit_b")
    assert "sam_checkpoint" in cfg.model and cfg.model["sam_checkpoint"] is None


@pytest.mark.parametrize("corrector,fusion", [("dual", "sf"), ("none", "none"), ("fp", "spatial")])
def test_preset_stage_patterns_fit_every_ablation_row(corrector, fusion):
    """The stage patterns hold for the models of the ablation's rows (no corrector, no fusion, one branch)."""
    from sonokit.models import create_model

    cfg = load_config(PRESETS[0], [f"model.corrector={corrector}", f"model.fusion={fusion}"])
    torch.manual_seed(0)
    model = create_model("sfrecsam", sam_variant="vit_tiny", img_size=64, corrector=corrector, fusion=fusion)
    base, corr = (s.set for s in cfg.stages)
    n_base = apply_freeze(model, base["optim.freeze"], base["optim.unfreeze"])["trainable"]
    assert n_base > 0 and not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("corrector."))
    for p in model.parameters():
        p.requires_grad_(True)
    if corrector == "none":
        with pytest.raises(ConfigError, match="'corrector.\\*' matches no parameter"):
            apply_freeze(model, corr["optim.freeze"], corr["optim.unfreeze"])
    else:
        n = apply_freeze(model, corr["optim.freeze"], corr["optim.unfreeze"])["trainable"]
        assert n == sum(p.numel() for p in model.corrector.parameters())
