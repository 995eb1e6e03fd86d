"""The pretraining contract: a method owns its training step. A toy method with an EMA teacher, a
masked-reconstruction decoder and a discriminator with its own optimiser (Lightning manual optimisation)
runs through `sonokit pretrain` / `sonokit.fit` unchanged: checkpoints, resume, encoder file."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sonokit.config import load_config
from sonokit.runs import fit
from sonokit.serialization import load_checkpoint, load_weights
from sonokit.ssl import SSL_METHODS
from sonokit.tasks.pretrain import PretrainMethod

from ..conftest import make_phantom


class ToyMIMGAN(PretrainMethod):
    """MIM (masked squares reconstructed by a 1x1 decoder) + a discriminator (own optimiser) + an EMA teacher."""

    def __init__(self, *, encoder, n_data: int, mask_ratio: float = 0.5, ema: float = 0.9, seed: int = 0,
                 image_size: int = 48, augment=None, lr: float = 1e-3, weight_decay: float = 0.0,
                 warmup_epochs: float = 0.0, freeze=None, unfreeze=None, groups=None, data=None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        from sonokit.models.encoders import create_encoder

        spec = dict(encoder)
        self.student = create_encoder(spec.pop("name"), **spec)
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.decoder = nn.Conv2d(self.student.out_channels[-1], 1, 1)
        self.disc = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                  nn.Linear(64, 1))
        self.setup_params()

    def encoder_module(self):
        return self.student

    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        x = batch["image"]
        g = torch.Generator().manual_seed(int(self.hparams.seed) * 1_000_003 + int(self.global_step))
        keep = (torch.rand(x.shape[0], 1, 6, 6, generator=g) > self.hparams.mask_ratio).float()
        keep = F.interpolate(keep, size=x.shape[-2:], mode="nearest").to(x)
        recon = torch.sigmoid(F.interpolate(self.decoder(self.student(x * keep)[-1]), size=x.shape[-2:]))
        mim = (((recon - x) ** 2) * (1 - keep)).sum() / (1 - keep).sum().clamp_min(1)
        adv = F.binary_cross_entropy_with_logits(self.disc(recon), torch.ones(x.shape[0], 1))
        opt_g.zero_grad()
        self.manual_backward(mim + 0.1 * adv)
        opt_g.step()
        d_loss = (F.binary_cross_entropy_with_logits(self.disc(x), torch.ones(x.shape[0], 1))
                  + F.binary_cross_entropy_with_logits(self.disc(recon.detach()), torch.zeros(x.shape[0], 1)))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.student.parameters()):
                t.mul_(self.hparams.ema).add_(s, alpha=1 - self.hparams.ema)
        self.log("train_loss", mim, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
        self.log("train_disc", d_loss, on_epoch=True, batch_size=x.shape[0])

    def configure_optimizers(self):
        gen = [*self.student.parameters(), *self.decoder.parameters()]
        return [torch.optim.AdamW(gen, lr=self.hparams.lr), torch.optim.AdamW(self.disc.parameters(), lr=self.hparams.lr)]


if "test_toy_mim_gan" not in SSL_METHODS:
    SSL_METHODS.register("test_toy_mim_gan")(ToyMIMGAN)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("contract"))


def test_a_method_with_its_own_optimisers_ema_teacher_and_discriminator(phantom, tmp_path):
    ov = [f"data.root={phantom / 'ph'}", f"data.split={phantom / 'split.json'}", "data.image_size=48",
          "data.batch_size=8", "encoder.name=resnet10t", "method={name: test_toy_mim_gan, mask_ratio: 0.4}",
          "optim.epochs=1", "trainer.progress=none", f"out_dir={tmp_path / 'pre'}"]
    run = fit(load_config(None, ov, task="pretrain"), log=None)
    ck = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert len(ck["optimizer_states"]) == 2  # the discriminator's optimiser is saved too
    assert any(k.startswith("teacher.") for k in ck["state_dict"]) and any(k.startswith("disc.") for k in ck["state_dict"])
    sd, meta = load_weights(run / "encoder.safetensors")
    assert meta["method"] == "test_toy_mim_gan" and set(sd) == {k[len("student."):] for k in ck["state_dict"]
                                                                 if k.startswith("student.")}
    steps = ck["global_step"]
    run = fit(load_config(run / "config.yaml", ["optim.epochs=2"]), resume=True, log=None)
    ck2 = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ck2["global_step"] == 2 * steps and ck2["callbacks"]["sonokit_run_state"]["epochs_done"] == 2
    t1 = {k: v for k, v in ck["state_dict"].items() if k.startswith("teacher.") and v.is_floating_point()}
    assert any(not torch.equal(v, ck2["state_dict"][k]) for k, v in t1.items())  # the restored teacher kept moving
    with pytest.raises(Exception, match="method.seed is set by the run"):
        fit(load_config(None, [*ov[:-1], "method={name: test_toy_mim_gan, seed: 3}", f"out_dir={tmp_path / 'x'}"],
                        task="pretrain"), log=None)
