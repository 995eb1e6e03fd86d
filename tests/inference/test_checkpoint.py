"""Reading trained models back: what a checkpoint is, and checkpoints written before task was recorded."""
import pytest

from sonokit.errors import CheckpointError
from sonokit.inference import read_task_checkpoint, task_of


def test_task_of_old_checkpoints():
    assert task_of({"model": "resunet_resnet18", "dice_weight": 1.0, "image_size": 128}) == "segment"
    assert task_of({"model": "dncnn_small", "degrade": {}, "patch_size": 64}) == "enhance"
    assert task_of({"method": "pirl", "method_kwargs": {}}) == "pretrain"
    assert task_of({"task": "classify"}) == "classify"
    assert task_of({"lr": 1}) is None


def test_not_a_training_checkpoint(tmp_path):
    import torch

    torch.save({"weights": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="is not a sonokit training checkpoint"):
        read_task_checkpoint(tmp_path / "w.pt")
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1}}, tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match="records no model"):
        read_task_checkpoint(tmp_path / "x.ckpt")
