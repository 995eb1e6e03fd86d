"""The run's data order: a function of (seed, epoch), equal to what Lightning drew from a shuffled
DataLoader before, and resumable inside an epoch."""
import lightning as L
import torch

from sonokit.runs.loaders import EpochSampler, ResumableLoader


class _Orders(L.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(batch["i"].tolist())


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w * batch["x"]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _orders(loader, epochs, tmp_path):
    cb = _Orders()
    L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[cb], default_root_dir=tmp_path).fit(_Tiny(), loader)
    return cb.seen


def test_same_order_as_a_shuffled_dataloader_under_lightning(tmp_path):
    ds = [{"i": i, "x": torch.ones(1)} for i in range(13)]
    old = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(5),
                                      drop_last=True)
    new = ResumableLoader(ds, batch_size=4, seed=5, drop_last=True)
    assert _orders(old, 4, tmp_path) == _orders(new, 4, tmp_path)


def test_order_is_a_function_of_seed_and_epoch_and_skips_for_a_resume():
    s = EpochSampler(10, seed=1)
    s.set_epoch(3)
    a = list(s)
    assert list(EpochSampler(10, seed=1).order(3)) == a and sorted(a) == list(range(10))
    assert a != EpochSampler(10, seed=1).order(2) and a != EpochSampler(10, seed=2).order(3)
    loader = ResumableLoader(list(range(10)), batch_size=2, seed=1)
    loader.load_state_dict({"epoch": 3, "completed": 2})
    assert [b.tolist() for b in loader] == [a[i:i + 2] for i in range(4, 10, 2)]
    assert [b.tolist() for b in loader] == [a[i:i + 2] for i in range(4, 10, 2)]  # a second iter() skips too
    loader.epoch_sampler.set_epoch(4)  # the next epoch starts at its first batch
    assert len([b for b in loader]) == 5
    assert EpochSampler(5, shuffle=False).order(7) == [0, 1, 2, 3, 4]
