"""Anatomy-aware Representation Learning (A-ViT, ICLR 2026) as a pretraining method, registered as ``arl``.

One training step on a batch (images, organ indices; -1 unknown), all randomness from one generator seeded by
``(seed, global_step)`` (a resumed run replays the same crops and masks):

1. DINO's multi-crop views: ``n_global`` global crops at ``image_size`` and ``n_local`` local crops;
2. **student** (the A-ViT encoder being trained) on each global crop with ``mask_ratio`` of its patches
   replaced by a learned mask token (SimMIM: the grid stays whole for the ACDT blocks), and on each local crop
   unmasked; the **teacher** (an EMA copy of student + projection head, momentum cosine-scheduled to 1) on the
   unmasked global crops; both given the organ;
3. ``L_SD``: lightly's ``DINOLoss`` (centring, teacher / student temperatures) between the teacher's global
   and the student's global and local outputs of lightly's ``DINOProjectionHead`` on the CLS token;
4. ``L_MIM`` (:func:`.objectives.mim_loss`): the light pixel decoder on the student's patch tokens of the
   masked global crops, L2 on the masked patches only;
5. ``L_adv^(G)`` (:func:`.objectives.generator_loss`): the patch discriminator on (up to ``adv_patches``)
   reconstructed masked patches; ``λ`` = :func:`.objectives.adaptive_weight` at the decoder's last layer every
   step, clamped to ``lambda_max`` (VQGAN's 1e4) (or ``lambda_fixed`` with ``adaptive_lambda: false``), logged
   as ``train_lambda`` and kept in the checkpoint (:attr:`ARLPretraining.lambda_trace`);
6. the organ head (when the encoder has one): cross-entropy on the images whose organ is known, weight
   ``organ_weight``, its accuracy logged;
7. one backward of ``L = L_SD + L_MIM + λ L_adv + organ_weight L_organ`` (the generator's, with the
   discriminator's weights detached in ``L_adv``) plus the discriminator's loss on real vs detached reconstructed
   patches (the two touch disjoint parameters, and DDP reduces every parameter once per step); then the
   generator's step (AdamW, warm-up + cosine), the teacher's EMA update and the discriminator's own step (Adam,
   ``disc_lr``).

``mim``, ``adversarial`` and ``distill`` switch the three objectives (the paper's ablation); the adversarial
term needs MIM (it judges reconstructions). The encoder must be an A-ViT (``avit_*``; ``acdt_blocks: none``
is a plain ViT: the ablation's first rows). The saved encoder is the student's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...tasks.pretrain import PretrainMethod
from ...tasks.schedule import adamw_cosine
from .objectives import (
    PatchDiscriminator,
    PixelDecoder,
    adaptive_weight,
    discriminator_loss,
    generator_loss,
    mim_loss,
    multi_crop,
    patchify,
    random_patch_mask,
)


class ARLPretraining(PretrainMethod):
    """Args (the ``method`` section of a pretraining config; the run provides encoder, n_data, seed,
    image_size, augment, lr, weight_decay, warmup_epochs, freeze / unfreeze / groups, data): see the module
    docstring for their roles."""

    streams = True  # needs no per-image index: can stream shards (sonokit.runs.pretrain.build_from_shards)

    def __init__(self, *, encoder: dict | str = "avit_tiny_patch16", n_data: int = 0, mim: bool = True,
                 adversarial: bool = True, distill: bool = True, mask_ratio: float = 0.5,
                 adaptive_lambda: bool = True, lambda_fixed: float = 0.1, lambda_max: float = 1e4,
                 disc_lr: float = 1e-4, disc_width: int = 32, adv_patches: int = 256, out_dim: int = 4096,
                 hidden_dim: int = 512, bottleneck_dim: int = 128, teacher_temp: float = 0.04,
                 warmup_teacher_temp: float = 0.04, warmup_teacher_temp_epochs: int = 0, student_temp: float = 0.1,
                 center_momentum: float = 0.9, momentum: float = 0.996, n_global: int = 2, n_local: int = 2,
                 local_size: int | None = None, global_scale: tuple[float, float] = (0.4, 1.0),
                 local_scale: tuple[float, float] = (0.1, 0.4), organ_weight: float = 1.0,
                 augment: dict | None = None, lr: float = 5e-4, weight_decay: float = 0.05, warmup_epochs: float = 0.0,
                 seed: int = 0, image_size: int = 128, freeze: list | None = None, unfreeze: list | None = None,
                 groups: list | None = None, data: dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.hparams["task"] = "pretrain"
        self.check_options(image_size=image_size, mim=mim, adversarial=adversarial, distill=distill,
                           mask_ratio=mask_ratio, local_size=local_size, n_global=n_global, n_local=n_local)
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead

        from ...models.avit import AViTEncoder
        from ...models.encoders import create_encoder

        spec = dict(encoder) if isinstance(encoder, dict) else {"name": encoder}
        self.encoder = create_encoder(**{"img_size": image_size, **spec})
        if not isinstance(self.encoder, AViTEncoder):
            raise ConfigError(f"method 'arl' needs an A-ViT encoder (avit_tiny_patch16, avit_small_patch16, "
                              f"avit_base_patch16; acdt_blocks: none for a plain ViT); found '{spec['name']}'")
        vit = self.encoder.model
        dim, self.patch = vit.embed_dim, vit.patch_size
        # every parameter takes part in the step's one backward (DDP's reducer needs that): no mask token without MIM
        self.mask_token = torch.nn.Parameter(torch.randn(dim) * 0.02) if mim else None
        self.decoder = PixelDecoder(dim, self.patch) if mim else None
        self.discriminator = PatchDiscriminator(width=disc_width) if adversarial else None
        if distill:
            self.head = DINOProjectionHead(dim, hidden_dim, bottleneck_dim, out_dim)
            # a fresh copy (deepcopy fails on the head's weight-normed last layer), then the student's weights
            self.teacher = torch.nn.ModuleDict({"encoder": create_encoder(**self.encoder.spec),
                                                "head": DINOProjectionHead(dim, hidden_dim, bottleneck_dim, out_dim)})
            self.teacher.load_state_dict({"encoder." + k: v for k, v in self.encoder.state_dict().items()}
                                         | {"head." + k: v for k, v in self.head.state_dict().items()})
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            self.dino = DINOLoss(out_dim, warmup_teacher_temp=warmup_teacher_temp, teacher_temp=teacher_temp,
                                 warmup_teacher_temp_epochs=warmup_teacher_temp_epochs, student_temp=student_temp,
                                 center_momentum=center_momentum)
        self.local_size = local_size or max(16, image_size // 2 // 16 * 16)
        self.lambda_trace: list[tuple[int, float]] = []
        # training steps done (Lightning's global_step counts both optimisers' steps); saved, so a resumed run
        # continues the seeds, the teacher's momentum schedule and the λ trace where it stopped
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.automatic_optimization = False
        self.setup_params()

    @staticmethod
    def check_options(*, image_size: int, mim: bool = True, adversarial: bool = True, distill: bool = True,
                      mask_ratio: float = 0.5, local_size: int | None = None, n_global: int = 2, n_local: int = 2,
                      **_) -> None:
        if not (mim or adversarial or distill):
            raise ConfigError("method 'arl': mim, adversarial and distill are all off; switch on at least one")
        if adversarial and not mim:
            raise ConfigError("method 'arl': the adversarial term judges MIM's reconstructions; it needs mim: true")
        if not 0.0 < float(mask_ratio) < 1.0:
            raise ConfigError(f"method.mask_ratio must be in (0, 1), found {mask_ratio}")
        for what, size in (("data.image_size", image_size), ("method.local_size", local_size)):
            if size is not None and (size < 16 or size % 16):
                raise ConfigError(f"{what} must be a multiple of the A-ViT patch size 16; found {size}")
        if n_global < 1 or n_local < 0:
            raise ConfigError(f"method needs n_global >= 1 and n_local >= 0; found {n_global}, {n_local}")

    def encoder_module(self) -> torch.nn.Module:
        return self.encoder

    def configure_optimizers(self):
        hp = self.hparams
        gen = [p for n, p in self.named_parameters()
               if p.requires_grad and not n.startswith(("discriminator.", "teacher."))]
        out = [adamw_cosine(self, params=gen, lr=hp.lr, weight_decay=hp.weight_decay, warmup_epochs=hp.warmup_epochs)]
        if self.discriminator is not None:
            out.append({"optimizer": torch.optim.Adam(self.discriminator.parameters(), lr=hp.disc_lr,
                                                      betas=(0.5, 0.999))})
        return out

    # --- the step -------------------------------------------------------------------------------------------
    def momentum_now(self) -> float:
        from lightly.utils.scheduler import cosine_schedule

        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        return cosine_schedule(min(int(self.steps_done), total), total, float(self.hparams.momentum), 1.0)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        step = int(self.steps_done)
        g = torch.Generator().manual_seed(int(hp.seed) * 1_000_003 + step)
        x = batch["image"]
        organ = torch.as_tensor(batch["organ"], device=x.device) if "organ" in batch else None
        globals_, locals_ = multi_crop(x, n_global=hp.n_global, global_size=x.shape[-1], global_scale=hp.global_scale,
                                       n_local=hp.n_local if hp.distill else 0, local_size=self.local_size,
                                       local_scale=hp.local_scale, generator=g)
        vit, B = self.encoder.model, x.shape[0]
        n = (x.shape[-2] // self.patch) * (x.shape[-1] // self.patch)
        terms, student_cls, organ_logits, recon, real = {}, [], [], [], []
        for v in globals_:
            m = random_patch_mask(B, n, hp.mask_ratio, g, v.device) if hp.mim else None
            tok = vit.run_blocks(v, organ, mask=m, mask_token=self.mask_token)[0]
            student_cls.append(tok[:, 0])
            if vit.organ_logits is not None:
                organ_logits.append(vit.organ_logits)
            if self.decoder is not None:
                recon.append((self.decoder(tok[:, 1:]), patchify(v, self.patch), m))
        for v in locals_:
            student_cls.append(vit.run_blocks(v, organ)[0][:, 0])
        loss = x.new_zeros(())
        if hp.distill:
            with torch.no_grad():
                t_out = [self.teacher["head"](self.teacher["encoder"].model.run_blocks(v, organ)[0][:, 0])
                         for v in globals_]
            s_out = [self.head(c) for c in student_cls]
            terms["sd"] = self.dino(t_out, s_out, epoch=int(self.current_epoch))
            loss = loss + terms["sd"]
        fake = None
        if self.decoder is not None:
            terms["mim"] = torch.stack([mim_loss(p, t, m) for p, t, m in recon]).mean()
            loss = loss + terms["mim"]
            if self.discriminator is not None:
                fake, real = self.adv_patches(recon, g)
                # D's weights detached here: the generator's loss moves the generator only
                frozen_d = {k: v.detach() for k, v in self.discriminator.named_parameters()}
                terms["adv_g"] = generator_loss(torch.func.functional_call(self.discriminator, frozen_d, (fake,)))
                lam = adaptive_weight(terms["mim"], terms["adv_g"], self.decoder.last.weight,
                                      max_value=hp.lambda_max) if hp.adaptive_lambda \
                    else torch.tensor(float(hp.lambda_fixed), device=x.device)
                terms["lambda"] = lam
                self.lambda_trace.append((step, float(lam)))
                loss = loss + lam * terms["adv_g"]
        if organ_logits and organ is not None and (organ >= 0).any() and hp.organ_weight > 0:
            logits = torch.cat(organ_logits)
            target = organ.repeat(len(organ_logits))
            terms["organ"] = F.cross_entropy(logits, target, ignore_index=-1)
            known = target >= 0
            terms["organ_acc"] = (logits.argmax(1)[known] == target[known]).float().mean()
            loss = loss + hp.organ_weight * terms["organ"]
        elif organ_logits:  # the head unused by this step's loss: a zero term keeps it in the graph (DDP)
            loss = loss + 0.0 * torch.cat(organ_logits).sum()
        d_loss = None
        if fake is not None:  # D on real vs detached fakes: its loss moves D only
            d_loss = terms["adv_d"] = discriminator_loss(self.discriminator(real), self.discriminator(fake.detach()))
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        for o in opts:
            o.zero_grad()
        # ONE backward for both players (their losses touch disjoint parameters), so under DDP every parameter
        # is reduced once per step; two backward passes per forward break DDP's reducer
        self.manual_backward(loss if d_loss is None else loss + d_loss)
        opts[0].step()
        self.lr_schedulers().step()
        if hp.distill:
            from lightly.models.utils import update_momentum

            m = self.momentum_now()
            update_momentum(self.encoder, self.teacher["encoder"], m)
            update_momentum(self.head, self.teacher["head"], m)
        if d_loss is not None:
            # the wrapped torch optimiser: Lightning counts LightningOptimizer steps as global steps, and a
            # training step must stay one global step (max_steps, the schedules, checkpoint_every_n_steps)
            opts[1].optimizer.step()
        self.steps_done += 1
        self.log("train_loss", loss.detach(), on_step=True, on_epoch=True, prog_bar=True, batch_size=B)
        for k, v in terms.items():
            self.log(f"train_{k}", v.detach(), on_step=True, on_epoch=True, batch_size=B)
        return loss.detach()

    def adv_patches(self, recon, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``adv_patches`` reconstructed masked patches and their originals, as (M, 1, p, p)."""
        p = self.patch
        fake = torch.cat([pred[m] for pred, _, m in recon])
        real = torch.cat([t[m] for _, t, m in recon])
        k = int(self.hparams.adv_patches)
        if fake.shape[0] > k:
            idx = torch.randperm(fake.shape[0], generator=g)[:k].to(fake.device)
            fake, real = fake[idx], real[idx]
        return fake.view(-1, 1, p, p), real.view(-1, 1, p, p)

    # --- the λ trace survives a resume -----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["arl_lambda_trace"] = [list(t) for t in self.lambda_trace]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.lambda_trace = [(int(s), float(v)) for s, v in checkpoint.get("arl_lambda_trace", [])]
