import pytest
import torch

from sonokit.tasks import SegmentationTask
from sonokit.tasks.checkpoint import atomic_torch_save


def test_atomic_save_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, p)

    def boom(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"step": 2}, p)
    monkeypatch.undo()
    assert torch.load(p, weights_only=False) == {"step": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["last.ckpt"]


def _fit(seed: int, tmp_path):
    import lightning as L

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
    return torch.cat([p.detach().flatten() for p in task.parameters()]), trainer.callback_metrics["train_loss_epoch"]


def test_same_seed_gives_same_weights(tmp_path):
    a, _ = _fit(0, tmp_path)
    b, _ = _fit(0, tmp_path)
    c, _ = _fit(1, tmp_path)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_task_rejects_bad_lr():
    with pytest.raises(ValueError, match="lr must be > 0"):
        SegmentationTask(lr=0)
