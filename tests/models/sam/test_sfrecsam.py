"""The SF-RecSAM model: outputs per configuration, training with SAM frozen, options, prompts from the mask."""
import pytest
import torch

from sonokit.errors import ConfigError
from sonokit.models import MODELS, create_model
from sonokit.models.sam import ADAPTER_UNFREEZE, SAM_FREEZE
from sonokit.tasks.losses import build_losses, total_loss
from sonokit.tasks.params import apply_freeze

from ._util import grads_ok, tiny

MAPS = {"logits", "coarse_logits"}
DUAL = MAPS | {"initial_logits", "uncertainty", "fp_logits", "fn_logits"}


def batch(B: int = 2, size: int = 64, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, 1, size, size)
    mask[:, :, size // 4: size // 2, size // 3: 3 * size // 4] = 1
    return {"image": torch.rand(B, 1, size, size, generator=g) * (1 - 0.5 * mask), "mask": mask}


@pytest.mark.parametrize("name, kw, keys", [
    ("sfrecsam", {}, DUAL),
    ("sfrecsam", {"fusion": "spatial", "point_prompt": True}, DUAL),
    ("sfrecsam", {"cnn_branch": True, "hf_input": True, "corrector": "none"}, MAPS),
    ("sfrecsam", {"corrector": "fnpc", "mc_samples": 3}, MAPS | {"initial_logits", "uncertainty"}),
    ("sfrecsam", {"corrector": "fp", "fusion": "none"}, DUAL - {"fn_logits"}),
    ("sfrecsam", {"corrector": "fn"}, DUAL - {"fp_logits"}),
    ("sfrecsam", {"patch_stride": 16, "pos_adapt": "interpolate", "adapters": "global", "box_component": "all"}, DUAL),
    ("sam_adapter", {}, MAPS),
])
@pytest.mark.parametrize("train", [True, False])
def test_outputs_per_configuration(name, kw, keys, train):
    m = tiny(name, **kw).train(train)
    b = batch()
    with torch.no_grad():
        out = m(b["image"], mask=b["mask"])
    assert set(out) == keys | {"boxes"}
    for k in keys:
        assert out[k].shape == (2, 1, 64, 64) and torch.isfinite(out[k]).all(), k
    assert out["boxes"].shape == (2, 4) and (out["boxes"] >= 0).all() and (out["boxes"] <= 63).all()
    if "uncertainty" in out:
        assert ((out["uncertainty"] >= 0) & (out["uncertainty"] <= 1)).all()


def test_other_input_sizes_are_resized_and_mapped_back():
    m = tiny(corrector="none").eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        out = m(torch.nn.functional.interpolate(x, size=(96, 128), mode="bilinear"))
        ref = m(x)
    assert out["logits"].shape == (1, 1, 96, 128)
    assert torch.allclose(out["boxes"], ref["boxes"] * torch.tensor([2.0, 1.5, 2.0, 1.5]), atol=1.5)
    with pytest.raises(ValueError, match=r"gray images \(B, 1, H, W\)"):
        m(torch.rand(1, 3, 64, 64))


def test_ground_truth_box_in_training_only():
    m = tiny(gt_box_prob=1.0, box_jitter=0.0, corrector="none")
    b = batch()
    with torch.no_grad():
        out = m.train()(b["image"], mask=b["mask"])
        # mask rows 16..31, columns 21..47 -> centre (34, 23.5), half sides (13, 7.5) x 1.3
        assert torch.allclose(out["boxes"][0], torch.tensor([17.1, 13.75, 50.9, 33.25]), atol=1e-4)
        m.eval()
        ev, ev_nomask = m(b["image"], mask=b["mask"]), m(b["image"])
    assert all(torch.equal(ev[k], ev_nomask[k]) for k in ev)  # the mask is never read in evaluation


def test_boxes_jitter_only_in_training_and_replay_with_the_seed():
    m = tiny(gt_box_prob=1.0, box_jitter=0.2, corrector="none").train()
    b = batch()
    with torch.no_grad():
        torch.manual_seed(5)
        a = m(b["image"], mask=b["mask"])["boxes"]
        torch.manual_seed(5)
        again = m(b["image"], mask=b["mask"])["boxes"]
        c = m(b["image"], mask=b["mask"])["boxes"]
    assert torch.equal(a, again) and not torch.equal(a, c)


def stage_loss(m, b, spec):
    terms = build_losses(spec, default_target="mask")
    return lambda: total_loss(terms, m(b["image"], mask=b["mask"]), b)[0]


@pytest.mark.parametrize("kw", [{}, {"cnn_branch": True, "hf_input": True}, {"fusion": "spatial"}])
def test_stage_1_trains_adapters_and_fusion_with_sam_frozen(kw):
    m = tiny(mc_samples=0, **kw).train()
    unfreeze = ADAPTER_UNFREEZE + (["*cnn_branch*"] if kw.get("cnn_branch") else [])
    counts = apply_freeze(m, SAM_FREEZE + ["corrector.*"], unfreeze)
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable and all(any(s in n for s in ("adapter", "fusion", "cnn_branch")) for n in trainable)
    assert counts["trainable"] < counts["total"] / 2
    missing = grads_ok(m, stage_loss(m, batch(), [{"name": "sam_dice_bce"}]))
    assert not missing, missing


@pytest.mark.parametrize("corrector", ["dual", "fn"])
def test_stage_2_trains_the_corrector_alone(corrector):
    m = tiny(mc_samples=4, dropout=0.3, corrector=corrector).train()
    apply_freeze(m, SAM_FREEZE)
    assert all(n.startswith("corrector.") for n, p in m.named_parameters() if p.requires_grad)
    spec = [{"name": "sam_correction"}, {"name": "sam_uncertainty_bce"}]
    missing = grads_ok(m, stage_loss(m, batch(), spec), steps=1)
    assert not missing, missing


def test_segmentation_task_passes_the_mask_and_trains_one_step():
    from sonokit.tasks.segment import SegmentationTask

    task = SegmentationTask(model="sfrecsam", model_kwargs={"sam_variant": "vit_tiny", "img_size": 64, "mc_samples": 0},
                            loss=[{"name": "sam_dice_bce"}], freeze=SAM_FREEZE + ["corrector.*"],
                            unfreeze=ADAPTER_UNFREEZE, image_size=64)
    assert task.inputs == ("mask",)
    loss = task.training_step(batch(), 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert not task.model.mask_decoder.output_upscaling[1].training  # frozen modules stay in eval mode


@pytest.mark.parametrize("kw, msg", [
    ({"mc_sample": 4}, "unknown key 'model.mc_sample' for model 'sfrecsam'; did you mean 'mc_samples'"),
    ({"fusion_mode": "sf"}, "unknown key 'model.fusion_mode' for model 'sfrecsam'; did you mean 'fusion'"),
    ({"corrector": "dual"}, "unknown key 'model.corrector' for model 'sam_adapter'"),
])
def test_unknown_keys(kw, msg):
    name = "sam_adapter" if "sam_adapter" in msg else "sfrecsam"
    with pytest.raises(ConfigError, match=msg):
        MODELS.check_kwargs(name, kw, "model.")


@pytest.mark.parametrize("kw, msg", [
    ({"corrector": "triple"}, "corrector must be one of none, dual, fp, fn, fnpc"),
    ({"corrector": "fnpc", "mc_samples": 1}, "mc_samples must be an integer >= 2"),
    ({"mc_samples": -1}, "mc_samples must be an integer >= 0"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ({"gt_box_prob": 1.5}, r"gt_box_prob must be a number in \[0, 1\]"),
    ({"box_component": "biggest"}, "box_component must be one of largest, all"),
    ({"img_size": 100}, "img_size 100 is not a multiple of patch_stride 8; use 96 or 104"),
    ({"hf_input": True}, "set cnn_branch: true"),
    ({"sam_variant": "vit_s"}, "sam_variant must be one of vit_b, vit_l, vit_h, vit_tiny"),
])
def test_bad_values_are_config_errors(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        create_model("sfrecsam", **({"sam_variant": "vit_tiny", "img_size": 64} | kw))


def test_sam_adapter_is_the_ablation_row_of_sfrecsam():
    a, s = tiny("sam_adapter"), tiny(fusion="none", corrector="none", mc_samples=0)
    assert list(a.state_dict()) == list(s.state_dict())
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(a.eval()(x)["logits"], s.eval()(x)["logits"])
