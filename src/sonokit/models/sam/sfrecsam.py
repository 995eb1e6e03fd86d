"""SF-RecSAM (ECCV 2024): SAM for breast ultrasound with spatial-frequency fusion and uncertainty correction,
and its ablation rows as arguments. Registered as ``sfrecsam`` and ``sam_adapter``.

The forward pass (all at ``img_size``; any other input size is resized to it and the outputs back):

1. image -> :class:`.encoder.SamImageEncoder` (adapters, optional CNN branch / Haar input, fusion) ->
   embedding (B, 256, g, g); or, with ``image_encoder`` a registered sonokit encoder (an A-ViT pretrained by
   ``sonokit pretrain``, a ViT, a ResNet), :class:`.any_encoder.EncoderEmbedding` (its deepest map, the fusion,
   SAM's neck), given the batch's ``organ`` when the encoder takes one;
2. **coarse mask**: SAM's mask decoder without any prompt (``no_mask_embed``, no sparse token) ->
   ``coarse_logits``;
3. **automatic prompt** (:mod:`.prompts`, no gradient): the box of the coarse mask (probability > 0.5; its
   largest component, x ``box_scale``, jittered in training), optionally a positive point at its centroid. In
   training, with probability ``gt_box_prob`` per image, the box of the ground-truth ``mask`` is used instead
   (same steps; the mask is never read in evaluation);
4. **initial mask**: the decoder with that prompt -> ``initial_logits`` (``logits`` without a corrector);
5. **correction** (:mod:`.corrector`): ``dual`` (the paper; ``fp`` / ``fn`` keep one branch, the ablation's
   rows) or ``fnpc`` (the code's training-free rules) -> ``logits``, with ``uncertainty`` and the branches'
   ``fp_logits`` / ``fn_logits``.

Outputs (a dict; each only when the configuration has it): ``logits``, ``coarse_logits``, ``initial_logits``,
``uncertainty``, ``fp_logits``, ``fn_logits`` — (B, 1, H, W) each — and ``boxes`` (B, 4) ``x0, y0, x1, y1`` in
input pixels. Randomness in training (box jitter, the ground-truth-box draw, MC dropout, FNPC points) comes from
torch's global generator, which the run seeds and a resumed run restores; in evaluation the MC draws are seeded
on every call (:mod:`.corrector`), so predictions are reproducible.

Training as in the paper (two stages; parameter patterns for ``optim``): stage 1 freezes SAM
(:data:`SAM_FREEZE`) and trains :data:`ADAPTER_UNFREEZE` (+ ``'*cnn_branch*'`` with the CNN branch) with
``mc_samples: 0`` (no correction) and Dice + BCE on ``logits`` and ``coarse_logits``; stage 2 freezes the same
SAM patterns, adapters and fusion included, and trains ``corrector.*`` with the losses of
:mod:`sonokit.tasks.losses_sam`. The paper also freezes the mask decoder; with randomly initialised SAM (no
official weights) unfreeze ``mask_decoder.*`` too. ``configs/sfrecsam_busi_{cpu,paper}.yaml`` express both
stages; :meth:`SFRecSAM.onnx_module` says what an ONNX export holds (:mod:`.graph`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..builder import MODELS
from ..layers import encode, reads_organ
from .any_encoder import EncoderEmbedding
from .corrector import (
    EVAL_SEED,
    DualFalseCorrector,
    correct,
    disc_points,
    dropout_masks,
    fnpc_refine,
    mask_logits,
    mc_probabilities,
    mc_uncertainty,
    unit_disc,
    vote_uncertainty,
)
from .decoder import build_prompt_decoder, decode, embed_prompts, no_prompt
from .encoder import SamImageEncoder, check_choice
from .prompts import COMPONENTS, auto_box, centroid_points

CORRECTORS = ("none", "dual", "fp", "fn", "fnpc")
LEARNED = {"dual": ("fp", "fn"), "fp": ("fp",), "fn": ("fn",)}  # the corrector branches of each choice
INIT_ONLY = ("sam_checkpoint", "encoder_init")
SAM_FREEZE = ["image_encoder.*", "prompt_encoder.*", "mask_decoder.*"]  # SAM and everything inside its encoder
ADAPTER_UNFREEZE = ["*adapter*", "*fusion*"]  # what stage 1 trains (plus '*cnn_branch*' with the CNN branch)
FNPC_RADIUS_DIV = 4  # FNPC samples its points in a disc of radius min(box side) / 4 about the box centre


def _check_range(value: object, what: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{what} must be a number in {rng}; found {value!r}")
    return float(value)


def _check_int(value: object, what: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"{what} must be an integer >= {lo}; found {value!r}")
    return value


class SFRecSAM(nn.Module):
    """SAM + adapters + spatial-frequency fusion + automatic prompts + a false corrector (module docstring).

    Args (the image encoder's are documented in :class:`.encoder.SamImageEncoder`):
        sam_variant, img_size, patch_stride, pos_adapt, adapters, adapter_ratio, cnn_branch, hf_input, fusion.
        image_encoder: ``"sam"`` (SAM's ViT, the paper) or a registered sonokit encoder name, e.g.
            ``avit_tiny_patch16`` (:class:`.any_encoder.EncoderEmbedding`; then only ``img_size`` and ``fusion`` of
            the arguments above apply, and ``cnn_branch`` / ``hf_input`` are an error).
        image_encoder_kwargs: that encoder's arguments (``acdt_blocks``, ``n_organs``, ...).
        image_encoder_checkpoint: its weights (``encoder.safetensors`` of ``sonokit pretrain``); the factory's
            ``encoder_init`` passes it.
        corrector: ``"dual"`` (paper), ``"fp"`` / ``"fn"`` (one branch: the paper's ablation rows),
            ``"fnpc"`` (training-free, the code's) or ``"none"``.
        mc_samples: T stochastic passes for the uncertainty (dual: MC dropout; fnpc: K point prompts, >= 2);
            0 with ``dual`` turns the correction off (``logits`` = ``initial_logits``; stage 1).
        dropout: MC-dropout rate on the decoder's input embedding.
        gt_box_prob: in training, the probability per image of prompting with the ground-truth box.
        box_scale, box_jitter, box_component: the box prompt (:mod:`.prompts`); jitter only in training.
        point_prompt: also give a positive point at the centroid of the boxed pixels.
        corrector_width: channels of the dual corrector's branches.
        fnpc_threshold, fnpc_alpha, fnpc_beta: FNPC's uncertainty threshold and intensity ratios.
    """

    def __init__(self, *, sam_variant: str = "vit_b", img_size: int = 256, patch_stride: int = 8,
                 pos_adapt: str = "conv", adapters: str = "every", adapter_ratio: float = 0.25,
                 cnn_branch: bool = False, hf_input: bool = False, fusion: str = "sf", corrector: str = "dual",
                 mc_samples: int = 8, dropout: float = 0.1, gt_box_prob: float = 0.5, box_scale: float = 1.3,
                 box_jitter: float = 0.1, box_component: str = "largest", point_prompt: bool = False,
                 corrector_width: int = 16, fnpc_threshold: float = 0.9, fnpc_alpha: float = 0.0,
                 fnpc_beta: float = 1.4, image_encoder: str = "sam", image_encoder_kwargs: dict | None = None,
                 image_encoder_checkpoint: str | None = None) -> None:
        super().__init__()
        self.corrector_kind = check_choice(corrector, CORRECTORS, "corrector")
        self.mc_samples = _check_int(mc_samples, "mc_samples", 2 if corrector == "fnpc" else 0)
        self.dropout = _check_range(dropout, "dropout", 0, 1, hi_open=True)
        self.gt_box_prob = _check_range(gt_box_prob, "gt_box_prob", 0, 1)
        self.box_scale = _check_range(box_scale, "box_scale", 0, 10, lo_open=True)
        self.box_jitter = _check_range(box_jitter, "box_jitter", 0, 1)
        self.box_component = check_choice(box_component, COMPONENTS, "box_component")
        self.point_prompt = bool(point_prompt)
        self.fnpc = dict(threshold=_check_range(fnpc_threshold, "fnpc_threshold", 0, 1),
                         alpha=_check_range(fnpc_alpha, "fnpc_alpha", 0, 100),
                         beta=_check_range(fnpc_beta, "fnpc_beta", 0, 100, lo_open=True))
        if not isinstance(image_encoder, str) or not image_encoder:
            raise ConfigError(f"image_encoder must be 'sam' or a registered encoder name; found {image_encoder!r}")
        if image_encoder == "sam":
            if image_encoder_kwargs or image_encoder_checkpoint:
                raise ConfigError("image_encoder_kwargs / image_encoder_checkpoint are for image_encoder set to a "
                                  "sonokit encoder; SAM's ViT takes sam_variant, sam_checkpoint and encoder_init")
            self.image_encoder = SamImageEncoder(sam_variant, img_size=img_size, patch_stride=patch_stride,
                                                 pos_adapt=pos_adapt, adapters=adapters,
                                                 adapter_ratio=adapter_ratio, cnn_branch=cnn_branch,
                                                 hf_input=hf_input, fusion=fusion)
        else:
            if cnn_branch or hf_input:
                raise ConfigError(f"cnn_branch / hf_input belong to SAM's image encoder; with image_encoder "
                                  f"'{image_encoder}' set both to false")
            self.image_encoder = EncoderEmbedding(image_encoder, img_size=img_size, fusion=fusion,
                                                  encoder_kwargs=image_encoder_kwargs,
                                                  checkpoint=image_encoder_checkpoint)
        self.img_size = img_size
        self.prompt_encoder, self.mask_decoder = build_prompt_decoder(self.image_encoder.grid, img_size)
        self.corrector = (DualFalseCorrector(_check_int(corrector_width, "corrector_width", 1),
                                             branches=LEARNED[corrector]) if corrector in LEARNED else None)

    @property
    def batch_inputs(self) -> tuple[str, ...]:
        """Batch keys the model reads besides the image: the mask (training's ground-truth box) and, with an
        encoder that takes it (A-ViT), the organ."""
        return ("mask",) + (("organ",) if reads_organ(self.image_encoder) else ())

    # -- pieces -------------------------------------------------------------------------------------------
    def decode(self, emb: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """Mask logits (N, 1, S, S) of image embeddings (N, 256, g, g) with prompt embeddings, row by row."""
        low = decode(self.mask_decoder, emb, self.prompt_encoder.get_dense_pe(), sparse, dense)  # (N, 1, 4g, 4g)
        return F.interpolate(low, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def prompts(self, coarse_logits: torch.Tensor, mask: torch.Tensor | None):
        """Boxes (B, 4) and optional points from the coarse mask (or, in training, the ground truth)."""
        kw = dict(scale=self.box_scale, component=self.box_component, jitter=self.box_jitter if self.training else 0.0)
        boxes, pixels = auto_box(coarse_logits[:, 0] > 0, **kw)
        if self.training and mask is not None and self.gt_box_prob > 0:
            use = (torch.rand(boxes.shape[0]) < self.gt_box_prob).to(boxes.device)  # (B,)
            if use.any():
                gt_boxes, gt_pixels = auto_box(mask[:, 0] > 0.5, **kw)
                boxes = torch.where(use[:, None], gt_boxes, boxes)
                pixels = torch.where(use[:, None, None], gt_pixels, pixels)
        return boxes, (centroid_points(pixels) if self.point_prompt else None)

    def dual_correction(self, image, emb, initial, sparse, dense) -> dict:
        """MC-dropout uncertainty (T decoder passes in one call, no gradient), the FP / FN branches and
        :func:`.corrector.correct`: the learned correction's outputs."""
        p0 = torch.sigmoid(initial)
        T = self.mc_samples
        if T > 0:
            with torch.no_grad():
                B, shared = emb.shape[0], not self.training  # evaluation: one seeded draw for the batch
                g = torch.Generator(device=emb.device).manual_seed(EVAL_SEED) if shared else None
                masks = dropout_masks(1 if shared else B, T, tuple(emb.shape[1:]), self.dropout, generator=g,
                                      device=emb.device, dtype=emb.dtype).expand(B, -1, -1, -1, -1)
                rep_s, rep_d = sparse.repeat_interleave(T, 0), dense.repeat_interleave(T, 0)
                probs = mc_probabilities(lambda e: self.decode(e, rep_s, rep_d), emb.detach(), masks)
                u = mc_uncertainty(probs).to(p0.dtype)  # (B, 1, S, S)
        else:
            u = torch.zeros_like(p0)
        fp, fn = self.corrector(image, p0, u)
        p = correct(p0, u, fp, fn)
        out = {"logits": torch.logit(p, eps=1e-6), "initial_logits": initial, "uncertainty": u}
        return out | {k: v for k, v in (("fp_logits", fp), ("fn_logits", fn)) if v is not None}

    @torch.no_grad()
    def fnpc_votes(self, emb: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """(B, K, S, S) binary masks of K point prompts sampled about each box centre (FNPC)."""
        B, K, S = emb.shape[0], self.mc_samples, self.img_size
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        radius = (boxes[:, 2:] - boxes[:, :2]).min(1).values.clamp_min(1.0) / FNPC_RADIUS_DIV
        g = None if self.training else torch.Generator().manual_seed(EVAL_SEED)
        unit = unit_disc(B if self.training else 1, K, g)  # (B or 1, K, 2)
        pts = disc_points(centres, radius, unit, (S, S)).reshape(B * K, 1, 2)
        labels = torch.ones(B * K, 1, dtype=torch.long, device=emb.device)
        sparse, dense = embed_prompts(self.prompt_encoder, points=(pts, labels))
        return (self.decode(emb.repeat_interleave(K, 0), sparse, dense) > 0).view(B, K, S, S)

    def fnpc_correction(self, image, emb, initial, boxes) -> dict:
        """Vote uncertainty of K point prompts and FNPC's intensity rules (no parameters, no gradient but through
        ``initial``): the training-free correction's outputs."""
        with torch.no_grad():
            _, u, voted = vote_uncertainty(self.fnpc_votes(emb, boxes))
            refined, _, _ = fnpc_refine(voted, u, image.float(), **self.fnpc)
        return {"logits": mask_logits(initial, refined), "initial_logits": initial, "uncertainty": u.to(initial.dtype)}

    def onnx_module(self) -> dict:
        """The part of the model an ONNX graph holds, with a note saying what is left out (:mod:`.graph`)."""
        from .graph import onnx_module

        return onnx_module(self)

    # -- forward ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                organ: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x (B, 1, H, W) in [0, 1]; ``mask`` (B, 1, H, W), read only in training for the ground-truth box;
        ``organ`` (B,) organ indices (-1 unknown) for an image encoder that takes it (ignored otherwise).
        Returns the outputs of the module docstring at (H, W)."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"SF-RecSAM expects gray images (B, 1, H, W) in [0, 1]; found {tuple(x.shape)}")
        B, _, H, W = x.shape
        S = self.img_size
        resized = (H, W) != (S, S)
        if mask is not None and mask.ndim == 3:
            mask = mask.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
        if resized:  # the run letterboxes to img_size; other callers get their size back
            x = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
            mask = None if mask is None else F.interpolate(mask.float(), size=(S, S), mode="nearest")
        emb = encode(self.image_encoder, x, organ)  # (B, 256, g, g)
        coarse = self.decode(emb, *no_prompt(self.prompt_encoder, B))  # (B, 1, S, S)
        boxes, points = self.prompts(coarse.detach(), mask if self.training else None)
        sparse, dense = embed_prompts(self.prompt_encoder, boxes, points)
        initial = self.decode(emb, sparse, dense)  # (B, 1, S, S)
        out = {"coarse_logits": coarse, "boxes": boxes}
        if self.corrector is not None:
            out.update(self.dual_correction(x, emb, initial, sparse, dense))
        elif self.corrector_kind == "fnpc":
            out.update(self.fnpc_correction(x, emb, initial, boxes))
        else:
            out["logits"] = initial
        if resized:
            out = {k: v if k == "boxes" else F.interpolate(v, size=(H, W), mode="bilinear", align_corners=False)
                   for k, v in out.items()}
            out["boxes"] = boxes * boxes.new_tensor([W / S, H / S, W / S, H / S])
        return out


def build(*, sam_checkpoint: str | None, encoder_init: str | None, **kw) -> SFRecSAM:
    """The model, then its weights: the SAM checkpoint first, then ``encoder_init`` over the image encoder.
    With ``image_encoder`` a sonokit encoder, ``encoder_init`` is that encoder's own checkpoint (loaded as it is
    built) and ``sam_checkpoint`` gives SAM's prompt encoder and mask decoder."""
    from .checkpoint import load_sam_checkpoint, load_sam_decoder, load_vit_init

    sam = kw.get("image_encoder", "sam") == "sam"
    model = SFRecSAM(**kw, **({} if sam else {"image_encoder_checkpoint": encoder_init}))
    if sam_checkpoint:
        (load_sam_checkpoint if sam else load_sam_decoder)(model, sam_checkpoint)
    if encoder_init and sam:
        load_vit_init(model.image_encoder, encoder_init)
    return model


@MODELS.register("sfrecsam", init_only=INIT_ONLY)
def sfrecsam(*, sam_variant: str = "vit_b", sam_checkpoint: str | None = None, encoder_init: str | None = None,
             img_size: int = 256, patch_stride: int = 8, pos_adapt: str = "conv", adapters: str = "every",
             adapter_ratio: float = 0.25, cnn_branch: bool = False, hf_input: bool = False, fusion: str = "sf",
             corrector: str = "dual", mc_samples: int = 8, dropout: float = 0.1, gt_box_prob: float = 0.5,
             box_scale: float = 1.3, box_jitter: float = 0.1, box_component: str = "largest",
             point_prompt: bool = False, corrector_width: int = 16, fnpc_threshold: float = 0.9,
             fnpc_alpha: float = 0.0, fnpc_beta: float = 1.4, image_encoder: str = "sam",
             image_encoder_kwargs: dict | None = None) -> SFRecSAM:
    """SF-RecSAM (ECCV 2024): SAM + adapters + spatial-frequency fusion + automatic box + dual false corrector.

    ``sam_checkpoint``: an official SAM file of ``sam_variant`` (``sam_vit_b_01ec64.pth``); ``encoder_init``: the
    ``encoder.safetensors`` of ``sonokit pretrain`` with a ``vit_*_patch16`` encoder of the same width (vit_tiny
    <- vit_tiny_patch16, vit_b <- vit_base_patch16, vit_l <- vit_large_patch16). The other arguments:
    :class:`SFRecSAM`. Ablation rows: ``fusion: none, corrector: none`` (SAM + adapters: ``sam_adapter``),
    ``fusion: spatial`` / ``sf``, ``corrector: fp`` / ``fn`` / ``dual``. ``image_encoder``: ``sam`` or a sonokit
    encoder (``avit_tiny_patch16`` ...; ``image_encoder_kwargs`` its arguments, ``encoder_init`` its
    ``encoder.safetensors``, ``sam_checkpoint`` then SAM's prompt encoder and mask decoder only).
    """
    return build(sam_checkpoint=sam_checkpoint, encoder_init=encoder_init, sam_variant=sam_variant,
                 img_size=img_size, patch_stride=patch_stride, pos_adapt=pos_adapt, adapters=adapters,
                 adapter_ratio=adapter_ratio, cnn_branch=cnn_branch, hf_input=hf_input, fusion=fusion,
                 corrector=corrector, mc_samples=mc_samples, dropout=dropout, gt_box_prob=gt_box_prob,
                 box_scale=box_scale, box_jitter=box_jitter, box_component=box_component, point_prompt=point_prompt,
                 corrector_width=corrector_width, fnpc_threshold=fnpc_threshold, fnpc_alpha=fnpc_alpha,
                 fnpc_beta=fnpc_beta, image_encoder=image_encoder, image_encoder_kwargs=image_encoder_kwargs)


@MODELS.register("sam_adapter", init_only=INIT_ONLY)
def sam_adapter(*, sam_variant: str = "vit_b", sam_checkpoint: str | None = None, encoder_init: str | None = None,
                img_size: int = 256, patch_stride: int = 8, pos_adapt: str = "conv", adapters: str = "every",
                adapter_ratio: float = 0.25, gt_box_prob: float = 0.5, box_scale: float = 1.3, box_jitter: float = 0.1,
                box_component: str = "largest", point_prompt: bool = False) -> SFRecSAM:
    """SAM with adapters and an automatic box prompt, no fusion, no corrector: SF-RecSAM's ablation baseline.

    The same model as ``sfrecsam`` with ``fusion: none, corrector: none`` (arguments: :class:`SFRecSAM`)."""
    return build(sam_checkpoint=sam_checkpoint, encoder_init=encoder_init, sam_variant=sam_variant,
                 img_size=img_size, patch_stride=patch_stride, pos_adapt=pos_adapt, adapters=adapters,
                 adapter_ratio=adapter_ratio, fusion="none", corrector="none", mc_samples=0,
                 gt_box_prob=gt_box_prob, box_scale=box_scale, box_jitter=box_jitter, box_component=box_component,
                 point_prompt=point_prompt)
