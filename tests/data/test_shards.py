"""Sharded pretraining data: write_shards (manifest, determinism, resume, skips), ShardDataset (workers, shuffle,
truncated shards, DDP on gloo) and `sonokit data shard`."""
import io
import json
import shutil
import socket
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sonokit.cli import app, main
from sonokit.data import open_dataset
from sonokit.data.organs import DEFAULT_ORGANS
from sonokit.data.shard_stream import ShardDataset, epoch_parts
from sonokit.data.shards import read_manifest, sample_key, write_shards
from sonokit.errors import ConfigError, DataError

from ..conftest import ok, save

runner = CliRunner()


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """``ph13``: 13 phantom images (40 px); ``ph12``: the first 12 of them."""
    from sonokit.physics import simulate_phantom

    d = tmp_path_factory.mktemp("shards")
    simulate_phantom(d / "ph13", n=13, size=40, seed=0)
    shutil.copytree(d / "ph13", d / "ph12")
    for sub in ("images", "masks"):
        (d / "ph12" / sub / "phantom_0012.png").unlink()
    return d


@pytest.fixture(scope="module")
def shards12(phantoms):
    """12 samples in shards of 4, 4, 4."""
    write_shards({"ph": open_dataset(phantoms / "ph12")}, phantoms / "s12", shard_size=4, log=None)
    return phantoms / "s12"


@pytest.fixture(scope="module")
def shards13(phantoms):
    """13 samples in shards of 5, 5, 3."""
    write_shards({"ph": open_dataset(phantoms / "ph13")}, phantoms / "s13", shard_size=5, log=None)
    return phantoms / "s13"


def _members(path: Path) -> list[str]:
    with tarfile.open(path) as t:
        return t.getnames()


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("shard-*.tar"))}


def test_shards_and_manifest(shards13, phantoms):
    man = read_manifest(shards13)
    assert man["complete"] and man["n_samples"] == 13 and man["skipped"] == []
    assert [(s["name"], s["samples"]) for s in man["shards"]] == [
        ("shard-000000.tar", 5), ("shard-000001.tar", 5), ("shard-000002.tar", 3)]
    assert man["vocabulary"] == list(DEFAULT_ORGANS) and man["sources"][0]["name"] == "ph"
    assert man["settings"]["shard_size"] == 5 and man["settings"]["sources"][0]["samples"] == 13
    assert _members(shards13 / "shard-000000.tar")[:2] == ["ph__phantom_0000.json", "ph__phantom_0000.png"]
    with tarfile.open(shards13 / "shard-000002.tar") as t:
        info = t.getmember("ph__phantom_0012.json")
        assert (info.mtime, info.uid, info.gid, info.uname) == (0, 0, 0, "sonokit")
        meta = json.loads(t.extractfile(info).read())
        png = np.asarray(Image.open(io.BytesIO(t.extractfile("ph__phantom_0012.png").read())))
    assert meta == {"source": "ph", "id": "phantom_0012", "organ": "phantom", "organ_index": DEFAULT_ORGANS.index("phantom"),
                    "label": meta["label"], "spacing": [0.2, 0.2], "size": [40, 40], "orig_size": [40, 40], "bit_depth": 8}
    assert meta["label"] in ("hypoechoic", "hyperechoic")
    assert np.array_equal(png, np.asarray(Image.open(phantoms / "ph13" / "images" / "phantom_0012.png")))  # lossless


def test_sample_keys_are_safe_and_distinct():
    assert sample_key("busi", "phantom_0001") == "busi__phantom_0001"
    a, b = sample_key("busi", "benign/benign (1)"), sample_key("busi", "benign/benign_1")
    assert a.startswith("busi__benign_benign_1-") and a != b and "." not in sample_key("d", "x.dcm#3")


def test_writes_are_deterministic(phantoms, shards13, tmp_path):
    m = write_shards({"ph": open_dataset(phantoms / "ph13")}, tmp_path / "again", shard_size=5, log=None)
    assert _files(tmp_path / "again") == _files(shards13)
    assert [s["sha256"] for s in m["shards"]] == [s["sha256"] for s in read_manifest(shards13)["shards"]]


def test_resume_after_interruption(phantoms, shards13, tmp_path):
    out, src = tmp_path / "s", {"ph": open_dataset(phantoms / "ph13")}

    def stop_after_two(msg):
        if msg.startswith("shard-000001"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_shards(src, out, shard_size=5, log=stop_after_two)
    assert not read_manifest(out)["complete"] and len(read_manifest(out)["shards"]) == 2
    (out / ".shard-000002.tar.tmp").write_bytes(b"half a shard")  # as a kill mid-shard leaves it
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    lines: list[str] = []
    man = write_shards(src, out, shard_size=5, log=lines.append)
    assert lines[0] == "resuming after 2 complete shards (10 of 13 samples done)"
    assert {n: (out / n).stat().st_mtime_ns for n in before} == before  # complete shards not rewritten
    assert _files(out) == _files(shards13) and man["complete"] and not list(out.glob(".*.tmp"))
    # a lost last shard is written again, identical; a complete folder is left alone
    (out / "shard-000002.tar").unlink()
    write_shards(src, out, shard_size=5, log=None)
    assert _files(out) == _files(shards13)
    assert write_shards(src, out, shard_size=5, log=lines.append)["n_samples"] == 13 and "already complete" in lines[-1]


def test_other_settings_or_folders_are_refused(phantoms, shards13, tmp_path):
    src = {"ph": open_dataset(phantoms / "ph13")}
    with pytest.raises(ConfigError, match="shard_size"):
        write_shards(src, shards13, shard_size=4, log=None)
    with pytest.raises(ConfigError, match="sources"):
        write_shards({"ph": open_dataset(phantoms / "ph12")}, shards13, shard_size=5, log=None)
    with pytest.raises(ConfigError, match="resume=True"):
        write_shards(src, shards13, shard_size=5, resume=False, log=None)
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        write_shards(src, tmp_path, log=None)
    with pytest.raises(ConfigError, match="'phantom', which is not in the organ vocabulary"):
        write_shards(src, tmp_path / "new", organs=["breast"], log=None)
    assert not (tmp_path / "new").exists()


def test_16bit_downscaled_and_unreadable(tmp_path):
    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(64, 48) * 21).astype(np.uint16)  # 16-bit values
    save(tmp_path / "d" / "images" / "a16.png", ramp)
    (tmp_path / "d" / "images" / "bad.png").write_bytes(b"not a png")
    save(tmp_path / "d" / "images" / "c8.png", np.full((20, 30), 77, np.uint8))
    man = write_shards([open_dataset(tmp_path / "d")], tmp_path / "s", max_side=32, log=None)
    assert man["n_samples"] == 2 and [(s["source"], s["id"]) for s in man["skipped"]] == [("d", "bad")]
    assert "bad.png" in man["skipped"][0]["error"]
    with tarfile.open(tmp_path / "s" / "shard-000000.tar") as t:
        meta = json.loads(t.extractfile("d__a16.json").read())
        img = Image.open(io.BytesIO(t.extractfile("d__a16.png").read()))
        assert img.mode.startswith("I") and img.size == (24, 32)  # 16-bit, long side 64 -> 32
        assert np.asarray(img).max() > 255
        assert json.loads(t.extractfile("d__c8.json").read())["size"] == [20, 30]  # small enough: kept
    assert meta["bit_depth"] == 16 and meta["orig_size"] == [64, 48] and meta["organ_index"] == -1
    item = next(iter(ShardDataset(tmp_path / "s", image_size=16, shuffle_buffer=0)))
    assert item["image"].shape == (1, 16, 16) and item["image"].max() > 0.9 and torch.isnan(item["spacing"]).all()


def test_epoch_parts_cover_every_sample():
    counts = [5, 5, 3]
    def seen(world, workers, drop_last=False, order=None):
        out = []
        for r in range(world):
            for w in range(workers):
                parts = epoch_parts(counts, rank=r, world_size=world, worker=w, num_workers=workers, order=order,
                                    drop_last=drop_last)
                out.append([(s, i) for s, a, b in parts for i in range(a, b)])
        return out
    flat = [x for part in seen(1, 3) for x in part]
    assert sorted(flat) == sorted({(s, i) for s, c in enumerate(counts) for i in range(c)})
    per_slot = seen(2, 2, order=[2, 0, 1])
    assert [len(p) for p in per_slot] == [3, 4, 3, 4]  # 7 per rank: the first sample of the order twice
    assert Counter(x for p in per_slot for x in p).most_common(1) == [((2, 0), 2)]
    dropped = seen(2, 2, drop_last=True)
    assert sum(map(len, dropped)) == 12 and len({x for p in dropped for x in p}) == 12
    with pytest.raises(DataError, match="4 ranks"):
        epoch_parts([3], rank=0, world_size=4, drop_last=True)


def _epoch(ds, workers=2, epoch=0) -> list[str]:
    ds.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=workers)
    return [k for b in loader for k in b["key"]]


def test_stream_every_sample_once_with_workers_and_reproducible_shuffle(shards12):
    ds = ShardDataset(shards12, image_size=24, shuffle_buffer=4, seed=7)
    e0, e1 = _epoch(ds, epoch=0), _epoch(ds, epoch=1)
    keys = {f"ph__phantom_{i:04d}" for i in range(12)}
    assert len(e0) == len(e1) == 12 and set(e0) == set(e1) == keys and len(ds) == 12
    assert e0 != e1  # another epoch, another order
    assert _epoch(ShardDataset(shards12, image_size=24, shuffle_buffer=4, seed=7), epoch=1) == e1  # replayable
    assert _epoch(ShardDataset(shards12, image_size=24, shuffle_buffer=4, seed=8), epoch=1) != e1
    assert _epoch(ShardDataset(shards12, image_size=24, shuffle_buffer=0), workers=0) == sorted(keys)
    b = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert b["image"].shape == (3, 1, 24, 24) and b["image"].dtype == torch.float32 and 0 <= b["image"].min()
    assert b["organ"].tolist() == [DEFAULT_ORGANS.index("phantom")] * 3 and b["label"].tolist() == [-1] * 3
    assert torch.allclose(b["spacing"], torch.full((3, 2), 0.2 * 40 / 24))
    lab = next(iter(ShardDataset(shards12, image_size=24, shuffle_buffer=0, classes=["hypoechoic", "hyperechoic"],
                                 organs=["breast", "phantom"])))
    assert lab["label"] in (0, 1) and lab["organ"] == 1


def test_truncated_shard_is_skipped_and_counted(shards12, tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(shards12, cut)
    shard = cut / "shard-000001.tar"  # samples 4..7
    with tarfile.open(shard) as t:
        png6 = t.getmember("ph__phantom_0006.png")
    shard.write_bytes(shard.read_bytes()[:png6.offset_data + png6.size // 2])  # cut inside sample 6's image
    ds = ShardDataset(cut, image_size=16, shuffle_buffer=0)
    keys = [it["key"] for it in ds]
    assert keys == [f"ph__phantom_{i:04d}" for i in (0, 1, 2, 3, 4, 5, 8, 9, 10, 11)]
    assert ds.missing == 2 and len(ds.errors) == 2 and "shard-000001.tar" in ds.errors[0]
    # under DDP a worker that lost samples repeats its last good one: equal batch counts on every rank
    half = ShardDataset(cut, image_size=16, shuffle_buffer=0, rank=1, world_size=2)  # samples 6..11
    assert len(list(half)) == len(half) == 6 and half.missing == 2


def test_incomplete_or_missing_shard_folder_is_refused(tmp_path, shards12):
    with pytest.raises(DataError, match="no shard manifest"):
        ShardDataset(tmp_path, image_size=16)
    part = tmp_path / "part"
    shutil.copytree(shards12, part)
    man = json.loads((part / "shards.json").read_text())
    (part / "shards.json").write_text(json.dumps({**man, "complete": False}))
    with pytest.raises(DataError, match="incomplete"):
        ShardDataset(part, image_size=16)


def _ddp_worker(rank: int, port: int, folders: list[str], out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        result = []
        for folder in folders:
            ds = ShardDataset(folder, image_size=16, shuffle_buffer=3, seed=1)
            ds.set_epoch(1)
            batches = list(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2))
            mine = {"keys": [k for b in batches for k in b["key"]], "batches": len(batches)}
            gathered = [None, None]
            dist.all_gather_object(gathered, mine)
            result.append(gathered)
        if rank == 0:
            Path(out).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_ddp_two_ranks_on_gloo(shards12, shards13, tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "gathered.json"
    mp.start_processes(_ddp_worker, args=(port, [str(shards12), str(shards13)], str(out)), nprocs=2,
                       start_method="fork")
    even, odd = json.loads(out.read_text())
    assert even[0]["batches"] == even[1]["batches"] == 4  # 6 samples per rank: 3 per worker, batches of 2
    assert sorted(even[0]["keys"] + even[1]["keys"]) == [f"ph__phantom_{i:04d}" for i in range(12)]  # each once
    assert not set(even[0]["keys"]) & set(even[1]["keys"])
    # 13 samples over 2 ranks: 7 each, one sample seen twice, the same number of batches on both ranks
    assert odd[0]["batches"] == odd[1]["batches"] and len(odd[0]["keys"]) == len(odd[1]["keys"]) == 7
    seen = Counter(odd[0]["keys"] + odd[1]["keys"])
    assert set(seen) == {f"ph__phantom_{i:04d}" for i in range(13)} and sorted(seen.values())[-2:] == [1, 2]


def test_cli_shard_end_to_end(phantoms, tmp_path):
    out = tmp_path / "s"
    text = ok(runner.invoke(app, ["data", "shard", f"mix={phantoms / 'ph12'}", str(phantoms / "ph13"), "--out", str(out),
                                  "--shard-size", "10", "--max-side", "32", "--organs", "breast, phantom"]))
    man = read_manifest(out)
    assert [s["samples"] for s in man["shards"]] == [10, 10, 5] and man["vocabulary"] == ["breast", "phantom"]
    assert [s["name"] for s in man["sources"]] == ["mix", "ph13"] and "25 samples" in text
    assert _members(out / "shard-000001.tar")[-2:] == ["ph13__phantom_0007.json", "ph13__phantom_0007.png"]
    with tarfile.open(out / "shard-000000.tar") as t:
        meta = json.loads(t.extractfile("mix__phantom_0000.json").read())
    assert meta["size"] == [32, 32] and meta["spacing"] == [0.25, 0.25] and meta["organ_index"] == 1
    ok(runner.invoke(app, ["data", "shard", f"mix={phantoms / 'ph12'}", str(phantoms / "ph13"), "--out", str(out),
                           "--shard-size", "10", "--max-side", "32", "--organs", "breast,phantom"]))  # resumes: done


@pytest.mark.parametrize("args,says", [
    (["{tmp}/missing"], "dataset path '{tmp}/missing' does not exist"),
    (["{ph}", "--format", "bogus"], "unknown dataset format 'bogus'"),
    (["{tmp}/empty"], "no folder images found under '{tmp}/empty'"),
    (["{ph}", "--organs", "breast,thyroid"], "anatomy 'phantom', which is not in the organ vocabulary"),
    (["{ph}", "--organs", " , "], "names no organ"),
    (["a b={ph}"], "source name 'a b' is not usable"),
    (["{ph}", "{ph}"], "two sources are named 'ph12'"),
    (["{ph}", "--shard-size", "0"], "shard_size must be a positive integer"),
])
def test_cli_shard_bad_input_is_one_clear_line(phantoms, tmp_path, monkeypatch, capsys, args, says):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    fill = lambda s: s.format(tmp=tmp_path, ph=phantoms / "ph12")
    monkeypatch.setattr("sys.argv", ["sonokit", "data", "shard", *map(fill, args), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and fill(says) in err.replace("\n", "") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_split_option_keeps_only_the_chosen_part(tmp_path):
    from sonokit.data.splits import load_split

    from ..conftest import make_phantom

    d = make_phantom(tmp_path, n=12, size=32)
    split = load_split(d / "split.json")
    r = CliRunner().invoke(app, ["data", "shard", f"ph={d / 'ph'}", "--split", f"ph={d / 'split.json'}",
                                 "--out", str(tmp_path / "tr")])
    assert r.exit_code == 0, r.output
    man = read_manifest(tmp_path / "tr")
    assert man["n_samples"] == len(split["train"])
    r = CliRunner().invoke(app, ["data", "shard", f"ph={d / 'ph'}", "--split", f"ph={d / 'split.json'}:test",
                                 "--out", str(tmp_path / "te")])
    assert r.exit_code == 0 and read_manifest(tmp_path / "te")["n_samples"] == len(split["test"])
    r = CliRunner().invoke(app, ["data", "shard", f"ph={d / 'ph'}", "--split", f"other={d / 'split.json'}",
                                 "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "NAME one of ['ph']" in str(r.exception)
