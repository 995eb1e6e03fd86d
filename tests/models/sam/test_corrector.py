"""Uncertainty and correction: batched MC passes, the fusion formula, FNPC's rules on a hand-made example."""
import math

import pytest
import torch

from sonokit.models.sam.corrector import (
    DualFalseCorrector,
    binary_entropy,
    correct,
    dropout_masks,
    fnpc_refine,
    mask_logits,
    mc_probabilities,
    mc_uncertainty,
    vote_uncertainty,
)
from sonokit.models.sam.decoder import build_prompt_decoder, decode, embed_prompts

from ._util import tiny


def test_entropy_is_normalised():
    p = torch.tensor([0.0, 1.0, 0.5, 0.1])
    expect = -(0.1 * math.log(0.1) + 0.9 * math.log(0.9)) / math.log(2)
    assert torch.allclose(binary_entropy(p), torch.tensor([0.0, 0.0, 1.0, expect]), atol=1e-4)


def test_correction_formula_and_bounds():
    p0, u = torch.tensor([0.9, 0.9, 0.2, 0.2]), torch.tensor([0.0, 1.0, 1.0, 0.5])
    fp, fn = torch.tensor([5.0, 0.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, math.log(3), 0.0])
    # p = p0 - u p0 s(fp) + u (1 - p0) s(fn): u = 0 keeps p0; s(0) = 0.5, s(ln 3) = 0.75
    expect = torch.tensor([0.9, 0.9 - 0.45 + 0.05, 0.2 - 0.1 + 0.6, 0.2 - 0.05 + 0.2])
    assert torch.allclose(correct(p0, u, fp, fn), expect)
    g = torch.Generator().manual_seed(0)
    p0, u = torch.rand(1000, generator=g), torch.rand(1000, generator=g)
    fp, fn = torch.randn(1000, generator=g) * 10, torch.randn(1000, generator=g) * 10
    p = correct(p0, u, fp, fn)
    assert (p >= 0).all() and (p <= 1).all()


def test_dual_corrector_starts_at_the_initial_mask():
    c = DualFalseCorrector(8)
    x, p0, u = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    fp, fn = c(x, p0, u)
    assert fp.shape == fn.shape == (2, 1, 16, 16)
    assert (correct(p0, u, fp, fn) - p0).abs().max() < 0.03  # sigmoid(-4) = 0.018
    assert all(n.startswith(("fp_branch", "fn_branch")) for n, _ in c.named_parameters())
    fp_only = DualFalseCorrector(8, branches=("fp",))
    out = fp_only(x, p0, u)
    assert out[1] is None and torch.allclose(correct(p0, u, out[0], None), p0 - u * p0 * torch.sigmoid(out[0]))


def test_decode_pairs_image_i_with_prompt_i_as_sams_decoder_does_for_one_image():
    torch.manual_seed(0)
    prompt, dec = build_prompt_decoder(8, 64)
    emb, pe = torch.randn(3, 256, 8, 8), prompt.get_dense_pe()
    boxes = torch.tensor([[5.0, 6.0, 30.0, 40.0], [0.0, 0.0, 63.0, 63.0], [20.0, 20.0, 22.0, 25.0]])
    sparse, dense = embed_prompts(prompt, boxes)
    ours = decode(dec, emb, pe, sparse, dense)
    assert ours.shape == (3, 1, 32, 32)
    for i in range(3):
        ref, _ = dec(emb[i:i + 1], pe, sparse[i:i + 1], dense[i:i + 1], multimask_output=False)
        assert torch.allclose(ours[i:i + 1], ref, atol=1e-4)


def test_batched_mc_passes_equal_a_loop_of_single_passes_with_the_same_masks():
    torch.manual_seed(0)
    prompt, dec = build_prompt_decoder(8, 64)
    B, T = 2, 5
    emb, pe = torch.randn(B, 256, 8, 8), prompt.get_dense_pe()
    sparse, dense = embed_prompts(prompt, torch.tensor([[5.0, 6.0, 30.0, 40.0], [10.0, 10.0, 50.0, 50.0]]))
    masks = dropout_masks(B, T, (256, 8, 8), 0.3, generator=torch.Generator().manual_seed(1))
    assert masks.shape == (B, T, 256, 8, 8) and torch.allclose(masks.unique(), torch.tensor([0.0, 1 / 0.7]))
    rs, rd = sparse.repeat_interleave(T, 0), dense.repeat_interleave(T, 0)
    probs = mc_probabilities(lambda e: decode(dec, e, pe, rs, rd), emb, masks)
    assert probs.shape == (B, T, 32, 32)
    for b in range(B):
        for t in range(T):
            one = torch.sigmoid(decode(dec, emb[b:b + 1] * masks[b, t], pe, sparse[b:b + 1], dense[b:b + 1]))
            assert torch.allclose(probs[b, t], one[0, 0], atol=1e-5)
    assert torch.allclose(mc_uncertainty(probs), binary_entropy(probs.mean(1, keepdim=True)))


def test_mc_passes_make_the_uncertainty_and_no_passes_give_none():
    m = tiny(mc_samples=0).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        out = m(x)
        assert out["uncertainty"].abs().max() == 0
        assert torch.allclose(torch.sigmoid(out["logits"]), torch.sigmoid(out["initial_logits"]), atol=1e-5)
        m.mc_samples = 4
        torch.manual_seed(0)
        u4 = m(x)["uncertainty"]
        m.mc_samples = 16
        u16 = m(x)["uncertainty"]
    assert u4.max() > 0 and (u4 >= 0).all() and (u4 <= 1).all() and not torch.equal(u4, u16)


def test_fnpc_rules_on_a_hand_made_example():
    # one 1 x 5 image; mask, uncertainty and intensities chosen so that each rule fires once
    mask = torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool).view(1, 1, 1, 5)
    u = torch.tensor([[0.0, 1.0, 1.0, 1.0, 1.0]]).view(1, 1, 1, 5)
    img = torch.tensor([[0.2, 0.2, 0.5, 0.3, 0.6]]).view(1, 1, 1, 5)
    # mu = mean(0.2, 0.2, 0.5) = 0.3; beta mu = 0.42; U = u > 0 + 0.9 (1 - 0) -> pixels 1..4
    refined, fn, fp = fnpc_refine(mask, u, img)
    assert fn.view(-1).tolist() == [False, False, False, True, False]  # 0 < 0.3 < 0.42: background -> lesion
    assert fp.view(-1).tolist() == [False, False, True, False, False]  # 0.5 > 0.42: lesion -> background
    assert refined.view(-1).tolist() == [True, True, False, True, False]
    # certain pixels never flip; an empty mask flips nothing; constant uncertainty flips nothing
    assert not fnpc_refine(mask, torch.zeros_like(u), img)[1].any()
    assert fnpc_refine(torch.zeros_like(mask), u, img)[0].sum() == 0


def test_votes_and_mask_logits():
    votes = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool).T  # (4 px, K=4)
    f, u, voted = vote_uncertainty(votes.T.reshape(1, 4, 1, 4))
    assert f.view(-1).tolist() == [1.0, 0.75, 0.25, 0.0]
    assert voted.view(-1).tolist() == [True, True, False, False]  # f > 0.5 max f
    assert torch.allclose(u.view(-1), binary_entropy(torch.tensor([1.0, 0.75, 0.25, 0.0])))
    logits = torch.tensor([3.0, -2.0, 0.0, -1.0])
    out = mask_logits(logits, torch.tensor([True, True, True, False]))
    assert torch.allclose(out, torch.tensor([3.0, 2.0, 0.01, -1.0]))


@pytest.mark.parametrize("kw", [{"corrector": "fnpc", "mc_samples": 4}])
def test_fnpc_model_is_training_free(kw):
    m = tiny(**kw).eval()
    assert m.corrector is None
    with torch.no_grad():
        out = m(torch.rand(2, 1, 64, 64))
    assert set(out) == {"logits", "coarse_logits", "initial_logits", "uncertainty", "boxes"}
    assert ((out["uncertainty"] >= 0) & (out["uncertainty"] <= 1)).all()


@pytest.mark.parametrize("kw", [{"mc_samples": 4, "dropout": 0.3}, {"corrector": "fnpc", "mc_samples": 4}])
def test_evaluation_is_a_function_of_the_image_alone(kw):
    m = tiny(**kw).eval()
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        a, again, alone = m(x), m(x), m(x[2:])
    for k in ("logits", "uncertainty"):
        assert torch.equal(a[k], again[k]), k  # no dependence on the global generator
        assert torch.allclose(a[k][2:], alone[k], atol=1e-4), k  # nor on the batch
