"""Add a trained run to the shipped models: weights (fp16 when that costs under ``max_dice_loss`` test Dice),
the index entry, and a model card generated from the run.

    python -m sonokit.zoo.build RUN NAME --alias breast --summary "..." [--ood NAME=FOLDER] [--use "..."]
        [--failure "..."]

The run's ``checkpoints/best.ckpt`` is scored on the held-out test part of its split in float32 and, exported
in fp16, again on the same images; fp16 ships only when the mean Dice moves by less than ``max_dice_loss``
(else fp32). The card records the training data and split (with its hash), the config, the commit, the
shipped file's metrics (mean ± std over test images; the same on every out-of-distribution folder given),
the fp16 check, intended use and known failure modes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import HERE, INDEX
from .docs import card_config, rel, write_docs


def score(seg, data: dict, ids) -> dict:
    from ..evaluation import evaluate_segmentation

    return evaluate_segmentation(seg, data_root=data["root"], data_format=data["format"], ids=ids,
                                 save_predictions=False)


def build_entry(run: str | Path, name: str, *, alias: str | None, summary: str, use: str, failures: list[str],
                ood: list[tuple[str, str]] = (), max_dice_loss: float = 0.002, measure: str | None = None,
                log=print) -> dict:
    from ..data import open_dataset
    from ..data.io import sha256_file
    from ..data.splits import filter_classes, load_split, select_ids
    from ..export import export_safetensors
    from ..inference import Segmenter, build_model, read_task_checkpoint

    run = Path(run)
    ck = run / "checkpoints" / "best.ckpt"
    ckpt = read_task_checkpoint(ck, expect=("segment",))
    hp = ckpt["hyper_parameters"]
    data = hp["data"]
    reader = open_dataset(data["root"], data["format"])
    ids = filter_classes(select_ids(load_split(data["split"]), "test"), reader, data.get("class_filter"),
                         label_key=data.get("label_key", "label"))
    full = score(Segmenter.from_loaded(ckpt, ck), data, ids)
    (HERE / "weights").mkdir(exist_ok=True)
    (HERE / "cards").mkdir(exist_ok=True)
    out = HERE / "weights" / f"{name}.safetensors"
    export_safetensors(build_model(ckpt, ck), hp, out, fp16=True)
    import sonokit.zoo as zoo

    def shipped_segmenter(path: Path):
        e = zoo.ZooEntry(name, "segment", alias, path.name, sha256_file(path), "", "", "", measure)
        sd, meta = zoo.weights(e)
        from ..models import create_model

        m = create_model(meta["sonokit_model"], **json.loads(meta["model_kwargs"])).eval()
        m.load_state_dict(sd)
        import torch

        return Segmenter(m, int(meta["image_size"]), {**hp}, torch.device("cpu"))

    half = score(shipped_segmenter(out), data, ids)
    loss = full["aggregate"]["dice"]["mean"] - half["aggregate"]["dice"]["mean"]
    dtype = "float16"
    if abs(loss) >= max_dice_loss:
        log(f"fp16 moves the test Dice by {loss:+.4f} (>= {max_dice_loss}): shipping float32")
        export_safetensors(build_model(ckpt, ck), hp, out)
        half, dtype = full, "float32"
    shipped = shipped_segmenter(out)
    oods = {nm: score(shipped, {"root": root, "format": None}, None) for nm, root in ood}
    sha = sha256_file(out)
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    card = card_text(name, alias, summary, use, failures, hp, info, run, half, oods, full, loss, dtype, out)
    (HERE / "cards" / f"{name}.md").write_text(card)
    entry = {"name": name, "task": "segment", "alias": alias, "file": out.name, "sha256": sha, "dtype": dtype,
             "card": f"{name}.md", "summary": summary, **({"measure": measure} if measure else {})}
    index = json.loads(INDEX.read_text()) if INDEX.exists() else {"models": []}
    index["models"] = [e for e in index["models"] if e["name"] != name] + [entry]
    INDEX.write_text(json.dumps(index, indent=1) + "\n")
    log(f"{name}: {out} ({out.stat().st_size / 2**20:.1f} MiB, {dtype}); card {HERE / 'cards' / (name + '.md')}")
    return entry


def _ms(res: dict, m: str) -> str:
    a = res["aggregate"][m]
    return f"{a['mean']:.3f} ± {a['std']:.3f} (n = {a['n']})"


def card_text(name, alias, summary, use, failures, hp, info, run, res, oods, full, loss, dtype, out) -> str:
    import yaml

    data = hp["data"]
    cfg = (run / "config.yaml").read_text() if (run / "config.yaml").exists() else ""
    cfg_d = yaml.safe_load(cfg) if cfg else {}
    hc = []
    if "hc_abs_err_mm" in res["aggregate"]:
        hc = ["", "Head circumference (HC18's score): the perimeter of the ellipse fitted to the predicted mask "
              "(`sonokit.metrics.ellipse`), in mm from the pixel size, against the challenge's reference HC: "
              f"absolute error {_ms(res, 'hc_abs_err_mm')} mm, signed error (predicted - reference) "
              f"{_ms(res, 'hc_err_mm')} mm. The same fit on the ground-truth masks is off by "
              f"{_ms(res, 'hc_mask_abs_err_mm')} mm: the measurement's own error, without the model."]
    rows = [f"| test ({res['n']} images of `{Path(data['root']).name}`, split `{Path(data['split']).name}`) | "
            f"{_ms(res, 'dice')} | {_ms(res, 'iou')} | {_ms(res, 'hd95')} {res.get('hd95_unit', 'px')} |"]
    for nm, r in oods.items():
        rows.append(f"| out of distribution: {nm} ({r['n']} images) | {_ms(r, 'dice')} | {_ms(r, 'iou')} | "
                    f"{_ms(r, 'hd95')} {r.get('hd95_unit', 'px')} |")
    lines = [
        f"# Model card: {name}", "", summary, "",
        f"- Use: `sonokit segment scan.png{' --task ' + alias if alias else ''}` (no checkpoint), or "
        f"`sonokit.load(\"{name}\")` in Python.",
        f"- File: `sonokit/zoo/weights/{out.name}` ({out.stat().st_size / 2**20:.1f} MiB, {dtype}); model "
        f"`{hp['model']}`, input {hp['image_size']} px gray, letterboxed; output: one logit map.",
        f"- Trained by: `sonokit train segment` with the config below, seed {cfg_d.get('seed')}, "
        f"{info.get('epochs', '?')} epochs in {info.get('seconds', '?')} s; commit {info.get('commit', '?')}.",
        f"- Training data: `{rel(data['root'])}` ({data.get('format')}), classes {data.get('classes')}; split "
        f"`{rel(data.get('split'))}` (hash {data.get('split_hash', '?')}): its train part for training, val for choosing "
        "the checkpoint, test scored once (below).", "",
        "## Metrics of the shipped file (held-out images, mean ± std over images)", "",
        "| evaluated on | Dice | IoU | HD95 |", "|---|---|---|---|", *rows, *hc, "",
        f"fp16 check: test Dice {full['aggregate']['dice']['mean']:.4f} in float32, "
        f"{res['aggregate']['dice']['mean']:.4f} as shipped ({dtype}; difference {loss:+.4f}).", "",
        "## Intended use", "", use, "", "## Known failure modes", "", *[f"- {f}" for f in failures], "",
        *card_config(run)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="Add a trained segmentation or enhancement run to sonokit's shipped "
                                 "models.")
    ap.add_argument("run")
    ap.add_argument("name")
    ap.add_argument("--alias", default=None)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--use", required=True)
    ap.add_argument("--failure", action="append", default=[])
    ap.add_argument("--ood", action="append", default=[], help="NAME=FOLDER")
    ap.add_argument("--measure", default=None, choices=["head_circumference"],
                    help="what `sonokit segment` measures on this model's masks")
    ap.add_argument("--guide", action="store_true", help="an enhancer that guides --refine nllr-wiener")
    a = ap.parse_args()
    from ..inference import read_task_checkpoint, task_of

    ck = read_task_checkpoint(Path(a.run) / "checkpoints" / "best.ckpt", expect=("segment", "enhance"))
    if task_of(ck["hyper_parameters"]) == "enhance":
        from .build_enhance import build_enhancer_entry

        build_enhancer_entry(a.run, a.name, alias=a.alias, summary=a.summary, use=a.use, failures=a.failure,
                             guide=a.guide)
        print(f"wrote {write_docs()}")
        return
    ood = [tuple(o.split("=", 1)) for o in a.ood]
    build_entry(a.run, a.name, alias=a.alias, summary=a.summary, use=a.use, failures=a.failure, ood=ood,
                measure=a.measure)
    print(f"wrote {write_docs()}")


if __name__ == "__main__":
    main()
