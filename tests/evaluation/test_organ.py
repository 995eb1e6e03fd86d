"""organ_accuracy: the organ head of an A-ViT scored on held-out shards (counts, per source, confusion), the
encoder rebuilt from its own encoder.safetensors, and the errors for encoders without a head or another
vocabulary."""
import csv
import json

import pytest
import torch

from sonokit.data import open_dataset
from sonokit.data.organs import DEFAULT_ORGANS
from sonokit.data.shards import write_shards
from sonokit.errors import CheckpointError, ConfigError
from sonokit.evaluation import load_pretrained_encoder, organ_accuracy
from sonokit.models.encoders import ENCODERS
from sonokit.runs.pretrain import save_encoder


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """6 'phantom' images (source a) and 4 relabelled 'thyroid' (source b), one shard folder."""
    from sonokit.physics import simulate_phantom

    d = tmp_path_factory.mktemp("organ")
    simulate_phantom(d / "a", n=6, size=40, seed=0)
    simulate_phantom(d / "b", n=4, size=40, seed=1)
    rows = list(csv.DictReader(open(d / "b" / "labels.csv")))
    with open(d / "b" / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([{**r, "anatomy": "thyroid"} for r in rows])
    write_shards({"a": open_dataset(d / "a"), "b": open_dataset(d / "b")}, d / "shards", shard_size=4,
                 log=lambda s: None)
    return d


def encoder(bias_to: str | None = None, **kw):
    enc = ENCODERS.create("avit_tiny_patch16", img_size=32, acdt_blocks=[11], **kw)
    if bias_to is not None:  # a head that always says `bias_to`
        lin = enc.model.organ_head[-1]
        torch.nn.init.zeros_(lin.weight)
        with torch.no_grad():
            lin.bias.fill_(-10).index_fill_(0, torch.tensor(DEFAULT_ORGANS.index(bias_to)), 10)
    return enc


def test_counts_per_source_and_confusion(shards):
    res = organ_accuracy(encoder("thyroid"), shards / "shards", batch_size=3)
    assert res["n"] == 10 and res["accuracy"] == pytest.approx(0.4)  # the 4 thyroid images only
    assert res["per_organ"] == {"phantom": 0.0, "thyroid": 1.0} and res["balanced_accuracy"] == 0.5
    assert res["per_source"]["a"] == {"n": 6, "organ": "phantom", "accuracy": 0.0, "predicted": {"thyroid": 6}}
    assert res["per_source"]["b"]["accuracy"] == 1.0
    assert res["confusion"] == {"phantom": {"thyroid": 6}, "thyroid": {"thyroid": 4}}
    assert organ_accuracy(encoder("phantom"), shards / "shards")["accuracy"] == pytest.approx(0.6)


def test_a_saved_encoder_is_rebuilt_from_its_metadata(shards, tmp_path):
    enc = encoder()
    path = save_encoder(enc, tmp_path / "encoder.safetensors", {
        "format": "sonokit-encoder", "encoder": "avit_tiny_patch16", "encoder_spec": json.dumps(enc.spec)})
    again = load_pretrained_encoder(path)
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), again.state_dict().values()))
    assert organ_accuracy(path, shards / "shards") == organ_accuracy(enc, shards / "shards")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained_encoder(tmp_path / "nope.safetensors")


def test_encoders_without_a_head_or_with_another_vocabulary_are_errors(shards):
    with pytest.raises(ConfigError, match="has no organ head"):
        organ_accuracy(ENCODERS.create("avit_tiny_patch16", img_size=32, acdt_blocks="none"), shards / "shards")
    with pytest.raises(ConfigError, match="4 outputs but the shards .* 16-organ vocabulary"):
        organ_accuracy(encoder(n_organs=4), shards / "shards")


def test_offset_effect_is_zero_for_a_fresh_avit_and_measured_once_offsets_move(shards):
    from sonokit.evaluation import organ_offset_effect

    enc = encoder()
    fresh = organ_offset_effect(enc, shards / "shards", wrong="heart")
    assert [r["block"] for r in fresh] == [11] and fresh[0]["images"] == 10
    assert fresh[0]["offset_own"] == fresh[0]["difference"] == 0.0  # zero-initialised offset network
    torch.manual_seed(0)
    last = enc.model.blocks[11].offsets.net[-1]
    torch.nn.init.normal_(last.weight, std=0.1)
    moved = organ_offset_effect(enc, shards / "shards", wrong="heart")[0]
    assert moved["offset_own"] > 0 and moved["difference"] > 0  # the organ's context now moves the sampling
    with pytest.raises(ConfigError, match="'spleen2' is not in the shards' vocabulary"):
        organ_offset_effect(enc, shards / "shards", wrong="spleen2")
    with pytest.raises(ConfigError, match="has no ACDT blocks"):
        organ_offset_effect(ENCODERS.create("avit_tiny_patch16", img_size=32, acdt_blocks="none"), shards / "shards")
