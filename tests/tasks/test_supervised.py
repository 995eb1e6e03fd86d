"""The supervised task contract: models returning dicts, extra batch inputs, weighted loss terms, parameter
groups and freezing, seeded determinism."""
import lightning as L
import pytest
import torch
from torch import nn

from sonokit.errors import ConfigError
from sonokit.models import MODELS
from sonokit.tasks import ClassificationTask, SegmentationTask
from sonokit.tasks.losses import LOSSES, build_losses, check_loss_specs, total_loss
from sonokit.tasks.params import apply_freeze, param_groups


class TwoHead(nn.Module):
    """A tiny model that takes the organ label and returns a dict of named outputs."""

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.adapter = nn.Conv2d(4, 4, 1)
        self.head = nn.Conv2d(4, num_classes, 1)
        self.aux = nn.Conv2d(4, num_classes, 1)
        self.organ_embed = nn.Embedding(16, 4)
        self.seen_organ = None

    def forward(self, x, organ=None):
        self.seen_organ = organ
        f = self.adapter(self.encoder(x))
        if organ is not None:
            f = f + self.organ_embed(organ.clamp_min(0))[:, :, None, None]
        return {"logits": self.head(f), "aux_logits": self.aux(f)}


if "test_two_head" not in MODELS:
    MODELS.register("test_two_head")(lambda *, num_classes=1: TwoHead(num_classes))


def _batch(b=4, s=16):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 1, s, s, generator=g)
    return {"image": x, "mask": (x > 0.5).float(), "index": torch.arange(b), "label": torch.arange(b) % 2,
            "organ": torch.arange(b) % 4 - 1, "spacing": torch.full((b, 2), float("nan"))}


def test_dict_outputs_extra_inputs_and_weighted_terms():
    task = SegmentationTask(model="test_two_head", loss=[{"name": "dice_ce"}, {"name": "bce", "weight": 0.5,
                                                                             "output": "aux_logits"}])
    assert task.inputs == ("organ",)
    batch = _batch()
    out = task.run_model(batch)
    assert torch.equal(task.model.seen_organ, batch["organ"])
    total, parts = total_loss(task.loss_terms, out, batch)
    expect = LOSSES.create("dice_ce")(out["logits"], batch["mask"]) + 0.5 * nn.functional.binary_cross_entropy_with_logits(
        out["aux_logits"], batch["mask"])
    assert torch.allclose(total, expect) and set(parts) == {"dice_ce", "bce"}


def test_loss_spec_errors():
    with pytest.raises(ConfigError, match=r"unknown key 'loss\[0\].lambda_dise'.*did you mean 'lambda_dice'"):
        check_loss_specs([{"name": "dice_ce", "lambda_dise": 1}])
    with pytest.raises(ConfigError, match="unknown loss 'dicee'"):
        check_loss_specs([{"name": "dicee"}])
    with pytest.raises(ConfigError, match="weight must be a number >= 0"):
        check_loss_specs([{"name": "dice", "weight": -1}])
    terms = build_losses([{"name": "bce", "output": "nope"}], default_target="mask")
    with pytest.raises(ConfigError, match="reads model output 'nope'"):
        total_loss(terms, {"logits": torch.zeros(1)}, {"mask": torch.zeros(1)})


def test_freeze_unfreeze_groups_and_frozen_modules_stay_in_eval():
    task = SegmentationTask(model="test_two_head", freeze=["encoder.*", "adapter.*"], unfreeze=["adapter.*"],
                            groups=[{"params": ["adapter.*"], "lr": 1e-5}])
    m = task.model
    assert not any(p.requires_grad for p in m.encoder.parameters())
    assert all(p.requires_grad for p in m.adapter.parameters())
    assert task.param_counts["trainable"] == sum(p.numel() for p in m.parameters() if p.requires_grad)
    groups = param_groups(m, lr=1e-3, weight_decay=0.0, groups=[{"params": ["adapter.*"], "lr": 1e-5}])
    assert [g["lr"] for g in groups] == [1e-5, 1e-3] and len(groups[0]["params"]) == 2
    task.train()
    assert not m.encoder[1].training and m.adapter.training  # frozen BatchNorm keeps its statistics
    with pytest.raises(ConfigError, match="pattern 'encodr.\\*' matches no parameter"):
        apply_freeze(TwoHead(), ["encodr.*"])
    with pytest.raises(ConfigError, match="no parameter is left to train"):
        param_groups(apply_and_return(TwoHead(), ["*"]), lr=1e-3, weight_decay=0)


def apply_and_return(model, freeze):
    apply_freeze(model, freeze)
    return model


def test_model_kwargs_checked_against_the_factory():
    with pytest.raises(ConfigError, match="unknown key 'model.decoder_chanels'.*did you mean 'decoder_channels'"):
        SegmentationTask(model="resunet_resnet10t", model_kwargs={"decoder_chanels": [8] * 5})


def test_classification_task_metrics_on_validation(tmp_path):
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(model="classifier", model_kwargs={"encoder": "resnet10t", "num_classes": 2}, lr=1e-2)
    b = _batch(8, 32)
    b["label"] = torch.tensor([0, 1] * 4)
    ds = [{k: v[i] for k, v in b.items()} for i in range(8)]
    dl = torch.utils.data.DataLoader(ds, batch_size=4)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, dl, dl)
    m = trainer.callback_metrics
    assert {"val_accuracy", "val_balanced_accuracy", "val_auroc", "val_loss"} <= set(m)
    assert 0 <= float(m["val_balanced_accuracy"]) <= 1


def _fit(seed: int, tmp_path):
    L.seed_everything(seed, verbose=False)
    task = SegmentationTask(model="resunet_resnet10t", model_kwargs={"decoder_channels": (8, 8, 8, 8, 8)},
                            augment={}, seed=seed, image_size=32)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 32, 32, generator=g)
    ds = [{"image": x[i], "mask": (x[i] > 0.5).float(), "index": i} for i in range(8)]
    dl = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(seed))
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, dl)
    return torch.cat([p.detach().flatten() for p in task.parameters()])


def test_same_seed_gives_same_weights(tmp_path):
    a, b, c = _fit(0, tmp_path), _fit(0, tmp_path), _fit(1, tmp_path)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_task_rejects_bad_lr():
    with pytest.raises(ValueError, match="lr must be > 0"):
        SegmentationTask(model="resunet_resnet10t", lr=0)
