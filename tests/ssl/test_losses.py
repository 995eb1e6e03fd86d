"""SSL losses, memory bank and methods: reference values on tiny tensors, invariants, gradients, bad options."""
import math

import pytest
import torch
import torch.nn.functional as F

from sonokit.errors import ConfigError
from sonokit.ssl import VARIANTS, MemoryBank, PretextTransform, contrastive_model, create_ssl_method, parse_pretext
from sonokit.ssl.losses import RelationContrastiveLoss, RelationNetwork, estimate_log_z, nce_loss, perceptual_loss, pirl_loss, relation_mse


def test_nce_loss_matches_hand_computation():
    pos = torch.tensor([0.9, 0.2])
    neg = torch.tensor([[0.1, -0.3, 0.5], [0.0, 0.4, -0.2]])
    tau, n_data, log_z = 0.5, 10, math.log(4.0)
    k = 3 / 10  # N / |D|
    ref = 0.0
    for b in range(2):  # PIRL Eq. 2-3 written out with plain floats
        p = math.exp(pos[b].item() / tau) / 4.0
        term = -math.log(p / (p + k))
        for n in range(3):
            q = math.exp(neg[b, n].item() / tau) / 4.0
            term -= math.log(1 - q / (q + k))
        ref += term / 2
    got = nce_loss(pos, neg, temperature=tau, log_z=torch.tensor(log_z), n_data=n_data)
    assert got.item() == pytest.approx(ref, rel=1e-5)


def test_nce_loss_is_stable_for_large_scores_and_prefers_separated_pairs():
    pos, neg = torch.ones(4), -torch.ones(4, 16)
    good = nce_loss(pos, neg, temperature=0.01, log_z=0.0, n_data=100)
    bad = nce_loss(-pos, -neg, temperature=0.01, log_z=0.0, n_data=100)
    assert torch.isfinite(good) and torch.isfinite(bad) and good < 1e-3 < bad


def test_estimate_log_z_makes_mean_score_one_over_n():
    pos, neg = torch.rand(8), torch.rand(8, 5) * 2 - 1
    log_z = estimate_log_z(pos, neg, temperature=0.07, n_data=50)
    p = torch.exp(torch.cat([pos, neg.flatten()]) / 0.07 - log_z)
    assert p.mean().item() == pytest.approx(1 / 50, rel=1e-4)


def test_pirl_mix_and_relation_mse_reference():
    assert pirl_loss(torch.tensor(2.0), torch.tensor(4.0), lam=0.25).item() == pytest.approx(3.5)
    s_pos, s_neg = torch.tensor([0.5, 1.0]), torch.tensor([[0.0, 0.5], [1.0, 0.0]])
    # mean((s+ - 1)^2) = (0.25 + 0) / 2, mean(s-^2) = (0 + 0.25 + 1 + 0) / 4
    assert relation_mse(s_pos, s_neg).item() == pytest.approx(0.125 + 0.3125)


def test_relation_network_scores_the_elementwise_product():
    torch.manual_seed(0)
    net = RelationNetwork(dim=4, hidden=3)
    u, v = torch.randn(5, 4), torch.randn(5, 4)
    lin1, lin2 = net.net[0], net.net[2]
    ref = torch.sigmoid(lin2(torch.relu(lin1(4 * u * v)))).squeeze(-1)  # D * (u ⊙ v)
    assert torch.allclose(net(u, v), ref)
    assert torch.allclose(net(u, v), net(v, u))  # symmetric: the product commutes
    s = net(u, v)
    assert ((s > 0) & (s < 1)).all()


def test_rcl_loss_falls_under_a_few_steps():
    torch.manual_seed(0)
    loss_fn = RelationContrastiveLoss(dim=8, hidden=16)
    z = F.normalize(torch.randn(16, 8), dim=1)
    neg = F.normalize(torch.randn(16, 6, 8), dim=2)
    opt = torch.optim.Adam(loss_fn.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = loss_fn(z, z, neg)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_perceptual_loss_and_shape_error():
    a = torch.zeros(2, 3, 4, 4)
    assert perceptual_loss(a, a + 2).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="equal shape"):
        perceptual_loss(a, torch.zeros(2, 3, 2, 2))


def test_memory_bank_negatives_exclude_self_and_update_is_ema():
    bank = MemoryBank(5, 4, momentum=0.5, seed=0)
    idx = torch.tensor([0, 3, 4])
    neg_idx = bank.negative_indices(idx, 200, torch.Generator().manual_seed(0))
    assert neg_idx.shape == (3, 4)  # capped at size - 1
    neg_idx = bank.negative_indices(idx, 3, torch.Generator().manual_seed(1))
    assert (neg_idx != idx[:, None]).all() and neg_idx.min() >= 0 and neg_idx.max() <= 4
    many = bank.negative_indices(torch.tensor([2]), 4, torch.Generator().manual_seed(2))
    assert 2 not in many.tolist()[0]
    old = bank.bank[1].clone()
    emb = torch.tensor([[3.0, 0, 0, 0]])
    bank.update(torch.tensor([1]), emb)
    ref = F.normalize(0.5 * old + 0.5 * torch.tensor([1.0, 0, 0, 0]), dim=0)
    assert torch.allclose(bank.bank[1], ref, atol=1e-6)
    assert torch.allclose(bank.bank.norm(dim=1), torch.ones(5))
    with pytest.raises(ValueError, match=">= 2 images"):
        MemoryBank(1)


@pytest.mark.parametrize("method", list(VARIANTS))
def test_ssl_methods_forward_backward_every_parameter_gets_a_gradient(method):
    torch.manual_seed(0)
    model = contrastive_model(method, encoder="resnet10t", n_data=12, num_negatives=5)
    x1, x2 = torch.rand(3, 1, 48, 48), torch.rand(3, 1, 48, 48)
    out = model(x1, x2, torch.tensor([0, 5, 11]), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])
    assert ("rcl" in out) == method.startswith("rcl") and ("perceptual" in out) == (method == "rcl+perceptual")
    out["loss"].backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad
    assert not torch.isnan(model.log_z)  # the NCE normaliser was fixed on the first batch


@pytest.mark.parametrize("lam", [1.0, 0.0, 0.3])
def test_forward_mixes_the_two_views_nce_and_rcl_terms_with_lambda(lam):
    # lam weighs the transformed view's head g, 1 - lam the image view's head f (Misra & van der Maaten, eq. 5)
    torch.manual_seed(0)
    model = contrastive_model("rcl", encoder="resnet10t", n_data=10, num_negatives=6, lam=lam).eval()
    x1, x2, idx = torch.rand(3, 1, 32, 32), torch.rand(3, 1, 32, 32), torch.tensor([0, 4, 9])
    model(x1, x2, idx, torch.Generator().manual_seed(0))  # fixes log Z on the first batch
    out = model(x1, x2, idx, torch.Generator().manual_seed(1))
    with torch.no_grad():
        zf, zg = model.embed(x1, model.f)[0], model.embed(x2, model.g)[0]
        pos = model.bank.positives(idx)
        neg = model.bank.negatives(idx, 6, torch.Generator().manual_seed(1))  # the draw forward made
        kw = dict(temperature=model.temperature, log_z=model.log_z, n_data=10)
        term = lambda z: nce_loss((z * pos).sum(1), torch.einsum("bd,bnd->bn", z, neg), **kw)  # noqa: E731
        assert torch.allclose(out["nce"], lam * term(zg) + (1 - lam) * term(zf), atol=1e-5)
        assert torch.allclose(out["rcl"], lam * model.rcl(zg, pos, neg) + (1 - lam) * model.rcl(zf, pos, neg), atol=1e-6)
        assert torch.allclose(out["loss"], out["nce"] + model.rcl_weight * out["rcl"], atol=1e-6)


def test_ssl_method_bad_options():
    with pytest.raises(ConfigError, match="unknown SSL method 'pirll'; did you mean 'pirl'"):
        create_ssl_method("pirll", n_data=4)
    with pytest.raises(ConfigError, match="unknown SSL method 'pirll'; did you mean 'pirl'"):
        contrastive_model("pirll", n_data=4)
    with pytest.raises(ValueError, match="no relation or perceptual term"):
        create_ssl_method("pirl", encoder="resnet10t", n_data=4, perceptual_weight=0.1)
    with pytest.raises(ValueError, match="no relation or perceptual term"):
        contrastive_model("pirl", encoder="resnet10t", n_data=4, perceptual_weight=0.1)
    with pytest.raises(ValueError, match="perceptual_level"):
        create_ssl_method("rcl+perceptual", encoder="resnet10t", n_data=4, perceptual_level=7)
    with pytest.raises(ValueError, match="temperature"):
        contrastive_model("rcl", encoder="resnet10t", n_data=4, temperature=0)


def test_pretext_specs():
    assert parse_pretext("cross_jigsaw+freq") == ("freq", "cross_jigsaw")
    with pytest.raises(ConfigError, match="unknown pretext transform"):
        parse_pretext("jigsaw+rotate")
    with pytest.raises(ConfigError, match="not both"):
        parse_pretext(["jigsaw", "cross_jigsaw"])
    with pytest.raises(ConfigError, match="does not divide the 128px"):
        PretextTransform("jigsaw").check_size(128)
    with pytest.raises(ConfigError, match="radius"):
        PretextTransform("freq", freq={"radius": [-1, 10]})
    t = PretextTransform("freq+cross_jigsaw")
    x = torch.rand(2, 1, 36, 36)
    assert torch.equal(t(x, torch.Generator().manual_seed(0)), t(x, torch.Generator().manual_seed(0)))


def test_pretraining_loss_falls_over_a_few_steps():
    """PIRL + RCL + perceptual on a fixed set of 16 random-texture images with the cross-patch jigsaw view."""
    torch.manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(16, 1, 40, 40), 3, 1, 1)  # 16 distinct smooth textures
    idx = torch.arange(16)
    model = contrastive_model("rcl+perceptual", encoder="resnet10t", n_data=16, num_negatives=15)
    view = PretextTransform("cross_jigsaw", grid=4)
    with torch.no_grad():
        model.bank.fill(idx, model.embed(x, model.f)[0])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(30):
        g = torch.Generator().manual_seed(step)
        b = torch.randperm(16, generator=g)[:8]
        out = model(x[b], view(x[b], g), idx[b], g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        model.bank.update(idx[b], out["z_image"])
        losses.append(out["loss"].item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
