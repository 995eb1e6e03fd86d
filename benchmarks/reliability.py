"""Trustworthy runs: every bad input and fault a careful user would meet, run as a real `sonokit` process.

Builds everything it needs in a temporary folder (a simulated phantom, its split, tiny segmentation,
enhancement and classification runs), then runs each case as its own command-line process
(``python -c "from sonokit.cli import main; main()" ...``, ``COLUMNS=200``) and classifies the outcome:

* ``clear error``   non-zero exit, an ``error:`` line (or click's usage-error box) that names the file or
                    option, no traceback;
* ``handled``       exit 0 or 1 with the bad input reported and the rest done (a corrupt file skipped, a
                    valid-but-unusual file processed correctly, a finished run left alone, a killed run
                    resumed with its history intact);
* ``traceback``     a Python traceback reached the user;
* ``silent``        exit 0 but the bad thing was neither reported nor refused (each case checks this
                    explicitly: the number of outputs, a marker file, a message, a file left unchanged);
* ``unclear error`` non-zero exit whose message does not name the file/option, or the rest not done;
* ``timeout``       the command did not end within its limit.

Cases: bad images and masks, configs and options, checkpoints (hostile pickles included), batch inference,
data integrity (a split rewritten under a trained model, ...), and faults (``kill -9`` at three points of a
training run, SIGTERM, a full disk on a small tmpfs). Writes ``benchmarks/results/reliability.{json,md}``.

The library is run from a snapshot of ``src/`` taken at start (other work may edit the tree meanwhile); the
results record the commit and the snapshot's digest.

    python benchmarks/reliability.py [--only ID_SUBSTRING ...] [--keep] [--no-write]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PY = sys.executable
ENTRY = [PY, "-c", "from sonokit.cli import main; main()"]
TB = "Traceback (most recent call last)"
VERDICTS = ("clear error", "handled", "traceback", "silent", "unclear error", "timeout")
CLEAN = ("clear error", "handled")

SEG = ["--set", "data.root=ph", "--set", "data.split=split.json", "--set", "model.name=resunet_resnet10t",
       "--set", "model.decoder_channels=[16,16,16,8,8]", "--set", "data.image_size=48", "--set", "data.batch_size=8",
       "--set", "optim.epochs=2", "--set", "trainer.progress=lines"]
ENH = ["--set", "data.root=ph", "--set", "data.split=split.json", "--set", "model.name=dncnn_small",
       "--set", "data.patch_size=16", "--set", "data.batch_size=4", "--set", "data.patches_per_epoch=8",
       "--set", "optim.epochs=1", "--set", "trainer.progress=lines"]
CLS = ["--set", "data.root=ph", "--set", "data.split=split.json", "--set", "model.encoder=resnet10t",
       "--set", "data.image_size=48", "--set", "data.batch_size=8", "--set", "optim.epochs=1",
       "--set", "trainer.progress=lines"]
#: the training runs that get killed: 8 steps per epoch, 4 epochs
FAULT_EPOCHS = 4


def _set(args: list[str], key: str, value: str) -> list[str]:
    out = list(args)
    for i, a in enumerate(out):
        if a.startswith(key + "="):
            out[i] = f"{key}={value}"
    return out


FAULT = _set(_set(SEG, "data.batch_size", "2"), "optim.epochs", str(FAULT_EPOCHS)) + ["--set", "trainer.num_threads=1"]


# ------------------------------------------------------------------------------------------------ processes
@dataclass
class Proc:
    args: list[str]
    rc: int | None
    out: str
    err: str
    seconds: float
    timed_out: bool = False

    @property
    def text(self) -> str:
        return self.err + "\n" + self.out

    @property
    def command(self) -> str:
        return "sonokit " + shlex.join(self.args)


class Ctx:
    """The work folder, the environment of every command, and helpers."""

    def __init__(self, work: Path, src: Path) -> None:
        self.work, self.src = work, src
        self.env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": str(src), "NO_COLOR": "1"}
        self.env.pop("FORCE_COLOR", None)

    def p(self, *parts) -> Path:
        return self.work.joinpath(*map(str, parts))

    def run(self, *args, timeout: float = 900, preexec: Callable | None = None) -> Proc:
        args = [str(a) for a in args]
        t0 = time.time()
        try:
            r = subprocess.run(ENTRY + args, cwd=self.work, env=self.env, capture_output=True, text=True,
                               timeout=timeout, preexec_fn=preexec)
            return Proc(args, r.returncode, r.stdout, r.stderr, time.time() - t0)
        except subprocess.TimeoutExpired as e:
            dec = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
            return Proc(args, None, dec(e.stdout), dec(e.stderr), time.time() - t0, timed_out=True)

    def popen(self, *args) -> subprocess.Popen:
        return subprocess.Popen(ENTRY + [str(a) for a in args], cwd=self.work, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)


def communicate(p: subprocess.Popen, args: list[str], t0: float, timeout: float = 900) -> Proc:
    try:
        out, err = p.communicate(timeout=timeout)
        return Proc([str(a) for a in args], p.returncode, out, err, time.time() - t0)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return Proc([str(a) for a in args], None, out, err, time.time() - t0, timed_out=True)


# ------------------------------------------------------------------------------------------------ verdicts
_ERR = re.compile(r"^\s*(error:|interrupted:)|─ Error ─|^Error: ", re.I | re.M)
_NOTE = re.compile(r"skipp|warning|problem|refus|finished|nothing to do|resum|remov|renam|interrupted|unreadable|"
                   r"missing|changed|left out|not binary|non-binary|size", re.I)


def error_block(p: Proc) -> str:
    """The error message: from the first ``error:`` line (or click's error box) to the end of the output."""
    for stream in (p.err, p.out):
        m = _ERR.search(stream)
        if m:
            return stream[m.start():]
    return ""


def relevant_line(p: Proc, pattern: str | None = None) -> str:
    lines = [ln.strip(" │┃╭╰─\t") for ln in (p.err + "\n" + p.out).splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if any(TB in ln for ln in lines):  # the exception line at the end of the traceback
        exc = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", ln)]
        return exc[-1] if exc else next(ln for ln in lines if TB in ln)
    if pattern:
        hit = [ln for ln in lines if re.search(pattern, ln, re.I)]
        if hit:
            return hit[0]
    block = error_block(p)
    if block:
        bl = [ln.strip(" │┃╭╰─╮╯\t") for ln in block.splitlines()]
        bl = [ln for ln in bl if ln.strip() and ln.strip().lower() != "error"]
        if bl:
            return bl[0]
    hit = [ln for ln in lines if _NOTE.search(ln)]
    if hit:
        return hit[0]
    return lines[0] if lines else ""


def raised_at(text: str) -> str:
    """The innermost sonokit frame of a traceback (``sonokit/PATH:LINE in FUNCTION``), or ''."""
    frames = re.findall(r'File "[^"]*/(sonokit/[^"]+)", line (\d+), in (\S+)', text)
    return f"{frames[-1][0]}:{frames[-1][1]} in {frames[-1][2]}" if frames else ""


def mentions(p: Proc, *subs: str, where: str = "auto") -> tuple[bool, str]:
    """All of ``subs`` appear (case-insensitively) in the error message (non-zero exit) or the whole output."""
    text = error_block(p) if (where == "error" or (where == "auto" and p.rc not in (0, 1))) else p.text
    text = re.sub(r"[│┃]\s*\n\s*[│┃]?", " ", text)  # click's error box wraps long messages
    missing = [s for s in subs if s.lower() not in text.lower()]
    return (not missing, "names " + ", ".join(repr(s) for s in subs) if not missing
            else "does not name " + ", ".join(repr(s) for s in missing))


def both(*checks: tuple[bool, str]) -> tuple[bool, str]:
    return all(c[0] for c in checks), "; ".join(c[1] for c in checks)


def verdict(p: Proc, passed: bool, procs: list[Proc]) -> str:
    if any(TB in q.text for q in procs):
        return "traceback"
    if any(q.timed_out for q in procs):
        return "timeout"
    has_error = bool(error_block(p))
    if p.rc not in (0, None) and has_error and passed and p.rc != 1:
        return "clear error"
    if p.rc in (0, 1) and passed:
        return "handled"
    if p.rc == 0:
        return "silent"
    if has_error and passed:
        return "clear error"
    return "unclear error"


@dataclass
class Outcome:
    proc: Proc
    passed: bool
    note: str
    procs: list[Proc] = field(default_factory=list)  # every process of the case (tracebacks are looked for in all)
    command: str | None = None  # for cases of several steps
    force: str | None = None  # a verdict that overrides the rule (e.g. a hostile file's payload ran)
    pattern: str | None = None  # which output line is the relevant one
    extra: dict = field(default_factory=dict)


CASES: list[tuple[str, str, str, str, Callable[[Ctx], Outcome]]] = []


def case(cid: str, group: str, what: str, expected: str):
    def deco(fn):
        CASES.append((cid, group, what, expected, fn))
        return fn
    return deco


def simple(ctx: Ctx, args: list, check: Callable[[Proc], tuple[bool, str]], pattern: str | None = None) -> Outcome:
    p = ctx.run(*args)
    ok, note = check(p)
    return Outcome(p, ok, note, [p], pattern=pattern)


# ------------------------------------------------------------------------------------------------ fixtures
def png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(arr, mode=mode) if mode else Image.fromarray(arr)).save(path)
    return path


def dataset_copy(ctx: Ctx, name: str) -> Path:
    d = ctx.p("cases", name, "ds")
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(ctx.p("ph"), d)
    return d


def good_images(ctx: Ctx, folder: Path, n: int = 3) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        src = ctx.p("ph", "images", f"phantom_{i:04d}.png")
        shutil.copy(src, folder / f"good_{i}.png")
        names.append(f"good_{i}")
    return names


def fresh(ctx: Ctx, name: str) -> Path:
    d = ctx.p("cases", name)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def rel(ctx: Ctx, p: Path) -> str:
    return str(Path(p).relative_to(ctx.work))


def outputs(folder: Path, pattern: str) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(pattern)) if folder.exists() else []


def count_outputs(folder: Path, pattern: str, n: int) -> tuple[bool, str]:
    got = outputs(folder, pattern)
    return len(got) == n, f"{len(got)} of {n} expected {pattern} outputs"


def dicom(path: Path, arr: np.ndarray) -> Path:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientID, ds.Modality = "P1", "US"
    ds.Rows, ds.Columns = arr.shape
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def phantom_array(ctx: Ctx, i: int = 0) -> np.ndarray:
    return np.asarray(Image.open(ctx.p("ph", "images", f"phantom_{i:04d}.png")).convert("L"))


def digest(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def ckpt_state(path: Path) -> dict:
    from sonokit.serialization import load_checkpoint

    ck = load_checkpoint(path)
    st = (ck.get("callbacks") or {}).get("sonokit_run_state") or {}
    return {"epochs_done": int(st.get("epochs_done", -1)), "global_step": int(ck.get("global_step", -1)),
            "history": len(st.get("history") or [])}


def metrics_rows(run: Path) -> list[dict]:
    f = run / "metrics.csv"
    if not f.exists():
        return []
    with open(f, newline="") as fh:
        return list(csv.DictReader(fh))


def metrics_intact(run: Path, epochs: int) -> tuple[bool, str]:
    rows = metrics_rows(run)
    ep = [r.get("epoch") for r in rows]
    finite = all(r.get("train_loss") not in (None, "") and np.isfinite(float(r["train_loss"])) for r in rows)
    ok = ep == [str(e) for e in range(epochs)] and finite
    return ok, f"metrics.csv epochs {ep}" + ("" if finite else " (a train_loss is missing)")


def orphans(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob(".*.tmp"))


# ================================================================================ images and masks (data check)
def _check_ds(ctx: Ctx, name: str, damage: Callable[[Path], str], *subs: str, fmt: str | None = None) -> Outcome:
    d = dataset_copy(ctx, name)
    bad = damage(d)
    p = ctx.run("data", "check", rel(ctx, d), *(["--format", fmt] if fmt else []))
    ok, note = mentions(p, bad, *subs, where="all")
    return Outcome(p, ok, note, [p], pattern=re.escape(bad))


@case("img-corrupt-png", "images", "corrupt PNG (random bytes) in a folder dataset; `data check`",
      "reported naming the file, the other 23 images counted (exit code: see exit-*)")
def _(ctx):
    def dmg(d):
        (d / "images" / "phantom_0005.png").write_bytes(np.random.default_rng(0).bytes(3000))
        return "phantom_0005"
    return _check_ds(ctx, "corrupt_png", dmg, "23 of 24")


@case("img-truncated-png", "images", "truncated PNG (first half of the bytes); `data check`",
      "reported naming the file, the other 23 counted")
def _(ctx):
    def dmg(d):
        f = d / "images" / "phantom_0006.png"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        return "phantom_0006"
    return _check_ds(ctx, "truncated_png", dmg, "23 of 24")


@case("img-zero-byte-png", "images", "zero-byte PNG among 3 good images; `segment FOLDER`",
      "skipped naming the file; the 3 good images segmented")
def _(ctx):
    d = fresh(ctx, "zero_png")
    good_images(ctx, d / "in")
    (d / "in" / "empty.png").write_bytes(b"")
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    return Outcome(p, *both(mentions(p, "empty.png", where="all"), count_outputs(d / "out", "*_mask.png", 3)), [p],
                   pattern="empty")


@case("img-rgba-transparent", "images", "RGBA PNG with transparent pixels among 3 good images; `segment FOLDER`",
      "reported (the alpha channel cannot be dropped silently) and skipped, or processed with a note; the rest done")
def _(ctx):
    d = fresh(ctx, "rgba")
    good_images(ctx, d / "in")
    g = phantom_array(ctx, 5)
    a = np.zeros_like(g)
    a[:, : g.shape[1] // 2] = 255  # left half opaque, right half fully transparent
    png(d / "in" / "rgba.png", np.dstack([g, g, g, a]), "RGBA")
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    told = mentions(p, "rgba.png", where="all")
    alpha = any(w in p.text.lower() for w in ("transparen", "alpha"))
    return Outcome(p, *both(told, (alpha, "says transparent/alpha" if alpha else "does not say why"),
                            (len(outputs(d / "out", "good_*_mask.png")) == 3, "3 good images segmented")), [p],
                   pattern="rgba")


@case("img-16bit-png", "images", "16-bit gray PNG (the 8-bit image x 257) next to its 8-bit twin; `segment`",
      "works: the same mask as the 8-bit image (scaled by 65535, not clipped)")
def _(ctx):
    d = fresh(ctx, "png16")
    g = phantom_array(ctx, 1)
    png(d / "in" / "img8.png", g)
    png(d / "in" / "img16.png", g.astype(np.uint16) * 257)  # PIL mode I;16
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"),
                "--save-prob")
    a, b = d / "out" / "img8_prob.png", d / "out" / "img16_prob.png"
    if a.exists() and b.exists():
        diff = int(np.abs(np.asarray(Image.open(a), np.int32) - np.asarray(Image.open(b), np.int32)).max())
        return Outcome(p, diff <= 1 and p.rc == 0, f"probability maps of the 8- and 16-bit twins differ by at most {diff}/255",
                       [p])
    return Outcome(p, False, "a probability map is missing", [p])


@case("img-mask-wrong-size", "images", "mask 40x48 for a 48x48 image; `data check`",
      "reported naming the mask and both sizes")
def _(ctx):
    def dmg(d):
        f = d / "masks" / "phantom_0007.png"
        png(f, np.asarray(Image.open(f))[:40])
        return "phantom_0007"
    return _check_ds(ctx, "mask_size", dmg, "48x40")


@case("img-mask-non-binary", "images", "non-binary mask (a 0..255 ramp); `data check`",
      "reported naming the mask as not binary")
def _(ctx):
    def dmg(d):
        png(d / "masks" / "phantom_0008.png", np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1)))
        return "phantom_0008"
    return _check_ds(ctx, "mask_nonbinary", dmg, "binary")


@case("img-tiff-nan", "images", "float32 TIFF with NaN pixels among 3 good images; `segment FOLDER`",
      "skipped naming the file and NaN; the rest segmented")
def _(ctx):
    d = fresh(ctx, "nan_tiff")
    good_images(ctx, d / "in")
    f = phantom_array(ctx, 2).astype(np.float32) / 255
    f[10:20, 10:20] = np.nan
    Image.fromarray(f, mode="F").save(d / "in" / "nan.tif")
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    return Outcome(p, *both(mentions(p, "nan.tif", "nan", where="all"), count_outputs(d / "out", "*_mask.png", 3)),
                   [p], pattern="nan.tif")


@case("img-mask-missing", "images", "an image whose mask file was deleted; `data check`",
      "reported naming the image and the missing mask")
def _(ctx):
    def dmg(d):
        (d / "masks" / "phantom_0009.png").unlink()
        return "phantom_0009"
    return _check_ds(ctx, "mask_missing", dmg, "mask")


@case("img-empty-folder", "images", "an empty folder; `data check`", "clear error naming the folder")
def _(ctx):
    d = fresh(ctx, "empty") / "empty_ds"
    d.mkdir()
    return simple(ctx, ["data", "check", rel(ctx, d)], lambda p: mentions(p, "empty_ds"))


@case("img-no-layout", "images", "a folder of notes and CSVs that matches no dataset layout; `data check`",
      "clear error naming the folder and the layouts expected")
def _(ctx):
    d = fresh(ctx, "nolayout") / "stuff"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("hello\n")
    (d / "sub" / "table.csv").write_text("a,b\n1,2\n")
    return simple(ctx, ["data", "check", rel(ctx, d)], lambda p: mentions(p, "stuff", "busi"))


@case("img-format-busi-on-folder", "images", "`--format busi` on a folder-layout dataset; `data check`",
      "clear error: not a BUSI dataset, names the folder and suggests the detected format")
def _(ctx):
    return simple(ctx, ["data", "check", "ph", "--format", "busi"], lambda p: mentions(p, "ph", "busi", "folder"))


@case("img-format-misspelt", "images", "`--format bussi` (misspelt); `data check`",
      "clear error with 'did you mean busi'")
def _(ctx):
    return simple(ctx, ["data", "check", "ph", "--format", "bussi"], lambda p: mentions(p, "bussi", "busi"))


@case("img-broken-symlink", "images", "an image replaced by a broken symbolic link; `data check`",
      "reported naming the link")
def _(ctx):
    def dmg(d):
        f = d / "images" / "phantom_0010.png"
        f.unlink()
        f.symlink_to(d / "nowhere" / "gone.png")
        return "phantom_0010"
    o = _check_ds(ctx, "symlink", dmg, "broken symbolic link")
    o.pattern = "symbolic link"
    return o


@case("img-dcm-zero-byte", "images", "zero-byte .dcm among 3 good images; `segment FOLDER`",
      "skipped naming the file; the rest segmented")
def _(ctx):
    d = fresh(ctx, "dcm_empty")
    good_images(ctx, d / "in")
    (d / "in" / "scan.dcm").write_bytes(b"")
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    return Outcome(p, *both(mentions(p, "scan.dcm", where="all"), count_outputs(d / "out", "*_mask.png", 3)), [p],
                   pattern="scan.dcm")


@case("img-dcm-zero-byte-check", "images", "`data check` on a zero-byte .dcm file", "clear error naming the file")
def _(ctx):
    d = fresh(ctx, "dcm_empty_check")
    (d / "scan.dcm").write_bytes(b"")
    return simple(ctx, ["data", "check", rel(ctx, d / "scan.dcm")], lambda p: mentions(p, "scan.dcm"))


@case("img-dcm-corrupt-header", "images", "DICOM whose header is overwritten with garbage, next to a valid DICOM "
      "and 3 good PNGs; `segment FOLDER`", "the corrupt file skipped naming it; the valid DICOM and the PNGs segmented")
def _(ctx):
    d = fresh(ctx, "dcm_corrupt")
    good_images(ctx, d / "in")
    dicom(d / "in" / "valid.dcm", phantom_array(ctx, 3))
    f = dicom(d / "in" / "broken.dcm", phantom_array(ctx, 4))
    b = bytearray(f.read_bytes())
    meta_end = b.find(b"\x08\x00")  # first element of group 0008, after the file meta group
    start = meta_end if meta_end > 132 else 200
    b[start:start + 48] = b"\xff" * 48
    f.write_bytes(bytes(b))
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    return Outcome(p, *both(mentions(p, "skipped: cannot decode pixels of DICOM 'cases/dcm_corrupt/in/broken.dcm'", where="all"),
                            count_outputs(d / "out", "*_mask.png", 4)), [p], pattern="skipped.*broken.dcm")


@case("img-segment-missing-path", "images", "`segment` on a path that does not exist", "clear error naming the path")
def _(ctx):
    return simple(ctx, ["segment", "no_such_scan.png", "-k", "run/checkpoints/best.ckpt", "-o", "cases/missing_out"],
                  lambda p: mentions(p, "no_such_scan.png"))


@case("img-train-bad-files", "images", "`train segment` on a dataset (no split file) holding a corrupt image and a "
      "mask of the wrong size", "the run trains on the rest and reports both files as skipped/excluded")
def _(ctx):
    d = dataset_copy(ctx, "train_bad")
    (d / "images" / "phantom_0011.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    f = d / "masks" / "phantom_0012.png"
    png(f, np.asarray(Image.open(f))[:40])
    args = ["train", "segment", "--out", rel(ctx, d.parent / "run"), *_strip_split(_set(SEG, "data.root", rel(ctx, d)))]
    p = ctx.run(*args)
    done = (d.parent / "run" / "checkpoints" / "last.ckpt").exists()
    return Outcome(p, *both(mentions(p, "phantom_0011", "phantom_0012", where="all"),
                            (done and p.rc in (0, 1), "the run finished" if done else "no checkpoint written")), [p],
                   pattern="phantom_0011")


def _strip_split(args: list[str]) -> list[str]:
    out, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == "--set" and i + 1 < len(args) and args[i + 1].startswith("data.split="):
            skip = True
            continue
        out.append(a)
    return out


@case("img-split-corrupt", "images", "`data split` of a dataset holding a corrupt image",
      "split written without it; the image named as excluded")
def _(ctx):
    d = dataset_copy(ctx, "split_corrupt")
    (d / "images" / "phantom_0013.png").write_bytes(b"not a png at all")
    out = d.parent / "split.json"
    out.unlink(missing_ok=True)
    p = ctx.run("data", "split", rel(ctx, d), "--out", rel(ctx, out), "--seeds", "0")
    ok = out.exists() and "phantom_0013" in json.loads(out.read_text()).get("params", {}).get("excluded_unreadable", [])
    return Outcome(p, *both(mentions(p, "phantom_0013", where="all"), (ok, "excluded in the split file" if ok else
                                                                        "not recorded as excluded")), [p],
                   pattern="phantom_0013")


# ================================================================================ configs and options
def _cfg_case(ctx: Ctx, name: str, extra: list[str], *subs: str, base: list[str] | None = None) -> Outcome:
    d = fresh(ctx, name)
    p = ctx.run("train", "segment", "--out", rel(ctx, d / "run"), *(SEG if base is None else base), *extra)
    nothing = not (d / "run" / "checkpoints").exists()
    return Outcome(p, *both(mentions(p, *subs), (nothing, "nothing trained" if nothing else "a run was trained")), [p])


@case("cfg-unknown-key", "config", "`--set optim.lrr=0.1` (unknown key)", "clear error naming the key, did you mean lr")
def _(ctx):
    return _cfg_case(ctx, "cfg_unknown", ["--set", "optim.lrr=0.1"], "optim.lrr", "lr")


@case("cfg-misspelt-model-key", "config", "`--set model.decoder_chanels=[8,8,8,8,8]` (misspelt model key)",
      "clear error naming the key, did you mean decoder_channels")
def _(ctx):
    return _cfg_case(ctx, "cfg_misspelt", ["--set", "model.decoder_chanels=[8,8,8,8,8]"], "decoder_chanels", "decoder_channels")


@case("cfg-unknown-model", "config", "`--set model.name=resunet_resnet1O` (unknown model name)",
      "clear error naming the model, did you mean resunet_resnet10")
def _(ctx):
    return _cfg_case(ctx, "cfg_model", ["--set", "model.name=resunet_resnet1O"], "resunet_resnet1O", "did you mean")


@case("cfg-bad-type", "config", "`--set optim.epochs=two` (a string for an int)", "clear error naming the key and the type")
def _(ctx):
    return _cfg_case(ctx, "cfg_type", ["--set", "optim.epochs=two"], "optim.epochs", "two")


@case("cfg-non-yaml", "config", "`--set model.decoder_channels=[16,16` (not valid YAML)", "clear error naming the key")
def _(ctx):
    return _cfg_case(ctx, "cfg_yaml", ["--set", "model.decoder_channels=[16,16"], "model.decoder_channels")


@case("cfg-set-no-equals", "config", "`--set optim.lr` (no `=`)", "clear error naming the argument and KEY=VALUE")
def _(ctx):
    return _cfg_case(ctx, "cfg_noeq", ["--set", "optim.lr"], "optim.lr")


@case("cfg-out-of-range", "config", "`--set data.batch_size=0`", "clear error naming the key and the range")
def _(ctx):
    return _cfg_case(ctx, "cfg_range", ["--set", "data.batch_size=0"], "data.batch_size")


@case("cfg-negative-epochs", "config", "`--epochs -3`", "clear error naming epochs")
def _(ctx):
    return _cfg_case(ctx, "cfg_epochs", ["--epochs", "-3"], "epochs")


@case("cfg-missing-config-file", "config", "`--config no_such.yaml`", "clear error naming the file")
def _(ctx):
    return _cfg_case(ctx, "cfg_missing", ["--config", "no_such.yaml"], "no_such.yaml")


@case("cfg-invalid-yaml-file", "config", "`--config broken.yaml` holding invalid YAML", "clear error naming the file")
def _(ctx):
    d = fresh(ctx, "cfg_badfile_yaml")
    (d / "broken.yaml").write_text("model:\n  name: [unclosed\n optim: {\n")
    return _cfg_case(ctx, "cfg_badfile", ["--config", rel(ctx, d / "broken.yaml")], "broken.yaml")


@case("cfg-enhance-patch-too-big", "config", "`train enhance --set data.patch_size=32` on 48-px frames (every frame "
      "smaller than the training crop)", "clear error saying the frames are smaller than the crop the patch size needs")
def _(ctx):
    d = fresh(ctx, "enh_patch")
    args = ["train", "enhance", "--out", rel(ctx, d / "run"), *_set(ENH, "data.patch_size", "32")]
    p = ctx.run(*args)
    return Outcome(p, *both(mentions(p, "48x48", "patch"), (not (d / "run" / "checkpoints").exists(), "nothing trained")), [p])


@case("cfg-data-root-missing", "config", "`--set data.root=no_such_folder`", "clear error naming the folder")
def _(ctx):
    return _cfg_case(ctx, "cfg_root", [], "no_such_folder", base=_set(SEG, "data.root", "no_such_folder"))


@case("cli-split-typo", "config", "`evaluate --split tset` (misspelt part)", "clear error naming 'tset' and the parts")
def _(ctx):
    return simple(ctx, ["evaluate", "-k", "run/checkpoints/best.ckpt", "--split", "tset", "-o", "cases/split_typo"],
                  lambda p: mentions(p, "tset", "test"))


@case("cli-device-unavailable", "config", "`segment --device cuda:0` on a machine without a GPU (or `--device gpu0`)",
      "clear error naming the device")
def _(ctx):
    import torch

    dev = "gpu0" if torch.cuda.is_available() else "cuda:0"
    return simple(ctx, ["segment", "ph/images/phantom_0000.png", "-k", "run/checkpoints/best.ckpt", "-o", "cases/dev_out",
                        "--device", dev], lambda p: mentions(p, dev))


@case("cli-threshold-range", "config", "`segment --threshold 1.5` (a probability above 1)",
      "clear error naming --threshold and the range")
def _(ctx):
    d = fresh(ctx, "thr")
    p = ctx.run("segment", "ph/images/phantom_0000.png", "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"),
                "--threshold", "1.5")
    return Outcome(p, *mentions(p, "threshold"), [p], pattern="empty|threshold")


@case("cli-export-bad-suffix", "config", "`export --out model.pkl` (unsupported format)",
      "clear error naming the suffix and the formats (.safetensors, .onnx)")
def _(ctx):
    d = fresh(ctx, "export_suffix")
    p = ctx.run("export", "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "model.pkl"))
    nothing = not (d / "model.pkl").exists()
    return Outcome(p, *both(mentions(p, ".pkl", "safetensors"), (nothing, "nothing written" if nothing else "a file written")),
                   [p])


@case("cli-unknown-option", "config", "`train segment --epoch 3` (unknown option)", "usage error naming --epoch")
def _(ctx):
    return _cfg_case(ctx, "cli_option", ["--epoch", "3"], "--epoch")


@case("cli-missing-value", "config", "`segment IMAGES -k` (option without its value)", "usage error naming -k")
def _(ctx):
    return simple(ctx, ["segment", "ph/images/phantom_0000.png", "-o", "cases/mv_out", "-k"], lambda p: mentions(p, "-k"))


@case("cli-unknown-command", "config", "`sonokit trian segment` (unknown command)", "usage error naming 'trian'")
def _(ctx):
    return simple(ctx, ["trian", "segment"], lambda p: mentions(p, "trian"))


@case("cli-split-test-no-split", "config", "`evaluate --data OTHER --split test` on a folder dataset that has no "
      "split file (ids unknown to the training split)", "clear error: no test split for that folder; says how to fix "
      "(--split all or --split-file)")
def _(ctx):
    d = fresh(ctx, "nosplit") / "other"
    (d / "images").mkdir(parents=True)
    (d / "masks").mkdir()
    for i in range(4):
        shutil.copy(ctx.p("ph", "images", f"phantom_{i + 14:04d}.png"), d / "images" / f"scan_{i}.png")
        shutil.copy(ctx.p("ph", "masks", f"phantom_{i + 14:04d}.png"), d / "masks" / f"scan_{i}.png")
    p = ctx.run("evaluate", "-k", "run/checkpoints/best.ckpt", "--data", rel(ctx, d), "--split", "test",
                "-o", rel(ctx, d.parent / "eval"))
    return Outcome(p, *mentions(p, "split"), [p])


@case("run-resume-no-checkpoint", "config", "`train segment --resume` into a folder that holds no run",
      "clear error: nothing to resume, naming the folder")
def _(ctx):
    return _cfg_case(ctx, "resume_none", ["--resume"], "--resume", "resume_none/run")


@case("run-existing-no-resume", "config", "`train segment --out RUN` into a trained run without --resume",
      "clear error naming the folder and --resume; the run untouched")
def _(ctx):
    before = digest(ctx.p("run", "checkpoints", "last.ckpt"))
    p = ctx.run("train", "segment", "--out", "run", *SEG)
    same = digest(ctx.p("run", "checkpoints", "last.ckpt")) == before
    return Outcome(p, *both(mentions(p, "--resume", "run"), (same, "last.ckpt untouched" if same else "last.ckpt changed")),
                   [p])


@case("run-resume-finished", "config", "`train segment --out RUN --resume` of a finished run",
      "says it is finished and does nothing (exit 0; last.ckpt and metrics.csv unchanged)")
def _(ctx):
    files = [ctx.p("run", "checkpoints", "last.ckpt"), ctx.p("run", "metrics.csv"), ctx.p("run", "run.json")]
    before = [digest(f) for f in files]
    p = ctx.run("train", "segment", "--out", "run", "--resume")
    same = [digest(f) for f in files] == before
    return Outcome(p, *both(mentions(p, "finished", "nothing to do", where="all"),
                            (same, "last.ckpt, metrics.csv, run.json unchanged" if same else "files changed")), [p],
                   pattern="finished")


@case("run-resume-changed-config", "config", "`--resume --set optim.lr=0.01` (a changed setting)",
      "clear error naming the changed key; the run untouched")
def _(ctx):
    before = digest(ctx.p("run", "checkpoints", "last.ckpt"))
    p = ctx.run("train", "segment", "--out", "run", "--resume", "--epochs", "3", "--set", "optim.lr=0.01")
    same = digest(ctx.p("run", "checkpoints", "last.ckpt")) == before
    return Outcome(p, *both(mentions(p, "optim.lr"), (same, "last.ckpt untouched" if same else "last.ckpt changed")), [p])


# ================================================================================ checkpoints
def _hostile(ctx: Ctx, kind: str) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO))
    from tests.reliability.malicious import make_hostile

    return make_hostile(kind, ctx.p("cases", "hostile"))


def _refused(ctx: Ctx, p: Proc, path: Path, marker: Path) -> Outcome:
    fired = marker.exists()
    ok, note = mentions(p, rel(ctx, path), "execute code")
    return Outcome(p, ok and not fired, note + ("; PAYLOAD RAN (marker file created)" if fired else "; payload did not run"),
                   [p], force="silent" if fired else None)


@case("ckpt-hostile-segment", "checkpoint", "hostile pickle `.ckpt` (unpickling creates a marker file) to `segment`",
      "refused before unpickling: clear error naming the file; no marker file")
def _(ctx):
    path, marker = _hostile(ctx, "zip_ckpt")
    p = ctx.run("segment", "ph/images/phantom_0000.png", "-k", rel(ctx, path), "-o", "cases/hostile/out1")
    return _refused(ctx, p, path, marker)


@case("ckpt-hostile-evaluate", "checkpoint", "tampered `best.ckpt` shaped like sonokit's, payload in the callback "
      "state, to `evaluate`", "refused: clear error naming the file; no marker file")
def _(ctx):
    path, marker = _hostile(ctx, "lightning_shaped")
    p = ctx.run("evaluate", "-k", rel(ctx, path), "-o", "cases/hostile/eval")
    return _refused(ctx, p, path, marker)


@case("ckpt-hostile-resume", "checkpoint", "a run whose `last.ckpt` was replaced by a hostile pickle; `--resume`",
      "refused: clear error naming the file; no marker file")
def _(ctx):
    d = fresh(ctx, "hostile_resume")
    shutil.copytree(ctx.p("run"), d / "run")
    path, marker = _hostile(ctx, "zip_protocol4")
    shutil.copy(path, d / "run" / "checkpoints" / "last.ckpt")
    p = ctx.run("train", "segment", "--out", rel(ctx, d / "run"), "--resume", "--epochs", "3")
    fired = marker.exists()
    ok, note = mentions(p, "last.ckpt", "execute code")
    return Outcome(p, ok and not fired, note + ("; PAYLOAD RAN" if fired else "; payload did not run"), [p],
                   force="silent" if fired else None)


@case("ckpt-renamed-safetensors", "checkpoint", "a real `best.ckpt` renamed `model.safetensors`; `segment`",
      "clear error naming the file: a pickle under a safetensors name")
def _(ctx):
    d = fresh(ctx, "as_safetensors")
    shutil.copy(ctx.p("run", "checkpoints", "best.ckpt"), d / "model.safetensors")
    return simple(ctx, ["segment", "ph/images/phantom_0000.png", "-k", rel(ctx, d / "model.safetensors"),
                        "-o", rel(ctx, d / "out")], lambda p: mentions(p, "model.safetensors"))


@case("ckpt-enhance-to-segment", "checkpoint", "an enhancement checkpoint given to `segment`",
      "clear error: not a segmentation checkpoint, suggests `sonokit enhance`")
def _(ctx):
    return simple(ctx, ["segment", "ph/images/phantom_0000.png", "-k", "enh/checkpoints/best.ckpt", "-o", "cases/e2s"],
                  lambda p: mentions(p, "best.ckpt", "enhance"))


@case("ckpt-segment-to-enhance", "checkpoint", "a segmentation checkpoint given to `enhance`",
      "clear error: not an enhancement checkpoint, suggests `sonokit segment`")
def _(ctx):
    return simple(ctx, ["enhance", "ph/images/phantom_0000.png", "-k", "run/checkpoints/best.ckpt", "-o", "cases/s2e"],
                  lambda p: mentions(p, "best.ckpt", "segment"))


@case("ckpt-classify-to-segment", "checkpoint", "a classification checkpoint given to `segment`",
      "clear error: a classification checkpoint, not segmentation")
def _(ctx):
    return simple(ctx, ["segment", "ph/images/phantom_0000.png", "-k", "cls/checkpoints/best.ckpt", "-o", "cases/c2s"],
                  lambda p: mentions(p, "best.ckpt", "classif"))


@case("ckpt-no-model-hparam", "checkpoint", "a real checkpoint with `hyper_parameters.model` deleted; `segment`",
      "clear error naming the file and the missing key")
def _(ctx):
    import torch

    from sonokit.serialization import load_checkpoint

    d = fresh(ctx, "no_model")
    ck = load_checkpoint(ctx.p("run", "checkpoints", "best.ckpt"))
    del ck["hyper_parameters"]["model"]
    torch.save(ck, d / "nomodel.ckpt")
    return simple(ctx, ["segment", "ph/images/phantom_0000.png", "-k", rel(ctx, d / "nomodel.ckpt"), "-o", rel(ctx, d / "out")],
                  lambda p: mentions(p, "nomodel.ckpt", "model"))


@case("ckpt-truncated", "checkpoint", "a checkpoint cut to half its bytes; `segment`", "clear error naming the file")
def _(ctx):
    d = fresh(ctx, "trunc_ckpt")
    b = ctx.p("run", "checkpoints", "best.ckpt").read_bytes()
    (d / "half.ckpt").write_bytes(b[: len(b) // 2])
    return simple(ctx, ["segment", "ph/images/phantom_0000.png", "-k", rel(ctx, d / "half.ckpt"), "-o", rel(ctx, d / "out")],
                  lambda p: mentions(p, "half.ckpt"))


@case("ckpt-zero-byte", "checkpoint", "a zero-byte `.ckpt`; `evaluate`", "clear error naming the file (empty)")
def _(ctx):
    d = fresh(ctx, "empty_ckpt")
    (d / "empty.ckpt").write_bytes(b"")
    return simple(ctx, ["evaluate", "-k", rel(ctx, d / "empty.ckpt")], lambda p: mentions(p, "empty.ckpt"))


@case("ckpt-directory", "checkpoint", "a directory as `--checkpoint`; `segment`", "clear error naming the folder")
def _(ctx):
    return simple(ctx, ["segment", "ph/images/phantom_0000.png", "-k", "run/checkpoints", "-o", "cases/dirk"],
                  lambda p: mentions(p, "run/checkpoints"))


@case("ckpt-missing", "checkpoint", "a `--checkpoint` path that does not exist; `evaluate`", "clear error naming the path")
def _(ctx):
    return simple(ctx, ["evaluate", "-k", "runs/nope/best.ckpt"], lambda p: mentions(p, "runs/nope/best.ckpt"))


# ================================================================================ batch inference
@case("batch-same-stem", "batch", "`x.png` and `x.jpg` in one folder; `segment FOLDER`",
      "both segmented under distinct names (x_png, x_jpg), the renaming reported")
def _(ctx):
    d = fresh(ctx, "same_stem")
    png(d / "in" / "x.png", phantom_array(ctx, 0))
    Image.fromarray(phantom_array(ctx, 1)).save(d / "in" / "x.jpg", quality=95)
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    return Outcome(p, *both(count_outputs(d / "out", "*_mask.png", 2), mentions(p, "x_png", where="all")), [p],
                   pattern="x_png|x.jpg")


@case("batch-corrupt-segment", "batch", "a corrupt file among 3 good images; `segment FOLDER`",
      "corrupt file skipped naming it; 3 masks written (exit code: see exit-segment-skipped)")
def _(ctx):
    d = fresh(ctx, "batch_corrupt_seg")
    good_images(ctx, d / "in")
    (d / "in" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(1).bytes(500))
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    return Outcome(p, *both(mentions(p, "bad.png", where="all"), count_outputs(d / "out", "*_mask.png", 3)), [p],
                   pattern="bad.png")


@case("batch-corrupt-enhance", "batch", "a corrupt file among 3 good images; `enhance FOLDER`",
      "corrupt file skipped naming it; 3 enhanced images written (exit code: see exit-enhance-skipped)")
def _(ctx):
    d = fresh(ctx, "batch_corrupt_enh")
    good_images(ctx, d / "in")
    (d / "in" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(2).bytes(500))
    p = ctx.run("enhance", rel(ctx, d / "in"), "-k", "enh/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    return Outcome(p, *both(mentions(p, "bad.png", where="all"), count_outputs(d / "out", "*_enhanced.png", 3)), [p],
                   pattern="bad.png")


@case("batch-busi-class-folder", "batch", "a BUSI-like class folder (`benign (1).png`, `benign (1)_mask.png`, "
      "`benign (2)_mask_1.png`, ...); `segment FOLDER`", "only the 2 images segmented; the 3 ground-truth masks left out "
      "(and counted)")
def _(ctx):
    d = fresh(ctx, "busi_like")
    for i in (1, 2):
        png(d / "benign" / f"benign ({i}).png", phantom_array(ctx, i))
        png(d / "benign" / f"benign ({i})_mask.png", np.asarray(Image.open(ctx.p("ph", "masks", f"phantom_{i:04d}.png"))))
    png(d / "benign" / "benign (2)_mask_1.png", np.zeros((48, 48), np.uint8))
    p = ctx.run("segment", rel(ctx, d / "benign"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    got = outputs(d / "out", "*_mask.png")
    ok = got == ["benign (1)_mask.png", "benign (2)_mask.png"]
    return Outcome(p, *both((ok, f"outputs {got}"), mentions(p, "mask", where="all")), [p], pattern="mask")


@case("batch-output-names", "batch", "`a/x.png` and `b/x.png` (same name in two sub-folders); `segment PARENT`",
      "two outputs, in sub-folders a/ and b/ of --out, the layout reported")
def _(ctx):
    d = fresh(ctx, "names")
    png(d / "in" / "a" / "x.png", phantom_array(ctx, 0))
    png(d / "in" / "b" / "x.png", phantom_array(ctx, 1))
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    got = outputs(d / "out", "*_mask.png")
    return Outcome(p, got == ["a/x_mask.png", "b/x_mask.png"] and p.rc == 0, f"outputs {got}", [p], pattern="a/x|b/x")


@case("batch-out-is-file", "batch", "`--out` names an existing file; `segment`", "clear error naming it")
def _(ctx):
    d = fresh(ctx, "out_file")
    (d / "result.txt").write_text("keep me\n")
    p = ctx.run("segment", "ph/images/phantom_0000.png", "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "result.txt"))
    kept = (d / "result.txt").read_text() == "keep me\n"
    return Outcome(p, *both(mentions(p, "result.txt"), (kept, "file kept" if kept else "file overwritten")), [p])


@case("batch-no-images", "batch", "a folder with no image files (a .txt and a .csv); `segment FOLDER`",
      "clear error saying no images were found, naming the folder")
def _(ctx):
    d = fresh(ctx, "no_images")
    (d / "in").mkdir()
    (d / "in" / "readme.txt").write_text("x")
    (d / "in" / "table.csv").write_text("a\n")
    p = ctx.run("segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, d / "out"))
    ok, note = mentions(p, "no_images", where="all")
    told = "no image" in p.text.lower() or "nothing" in p.text.lower()
    return Outcome(p, ok and told and p.rc != 0, note + ("; says no images" if told else "; does not say no images")
                   + f"; exit {p.rc}", [p])


# ================================================================================ exit codes (what a script sees)
def _exit_case(ctx: Ctx, name: str, cmd: list[str], bad: str) -> Outcome:
    p = ctx.run(*cmd)
    told = bad in p.text
    return Outcome(p, p.rc == 1, f"exit {p.rc} (documented: 1); the skip is {'printed' if told else 'NOT printed'} "
                   "on the console, but a script (`sonokit ... && next step`, CI) sees only the exit code", [p],
                   pattern=re.escape(bad))


@case("exit-segment-skipped", "exit code", "exit code of `segment FOLDER` when one of its files was skipped "
      "(a script runs `sonokit segment ... && next_step`)", "exit 1, as `sonokit segment --help` documents")
def _(ctx):
    d = fresh(ctx, "exit_segment")
    good_images(ctx, d / "in")
    (d / "in" / "bad.png").write_bytes(b"garbage")
    return _exit_case(ctx, "exit_segment", ["segment", rel(ctx, d / "in"), "-k", "run/checkpoints/best.ckpt", "-o",
                                            rel(ctx, d / "out")], "bad.png")


@case("exit-enhance-skipped", "exit code", "exit code of `enhance FOLDER` when one of its files was skipped",
      "exit 1 (as `segment`)")
def _(ctx):
    d = fresh(ctx, "exit_enhance")
    good_images(ctx, d / "in")
    (d / "in" / "bad.png").write_bytes(b"garbage")
    return _exit_case(ctx, "exit_enhance", ["enhance", rel(ctx, d / "in"), "-k", "enh/checkpoints/best.ckpt", "-o",
                                            rel(ctx, d / "out")], "bad.png")


@case("exit-data-check-unreadable", "exit code", "exit code of `data check` on a dataset with an unreadable image",
      "exit 1, as `sonokit data check --help` documents")
def _(ctx):
    d = dataset_copy(ctx, "exit_check")
    (d / "images" / "phantom_0002.png").write_bytes(b"garbage")
    return _exit_case(ctx, "exit_check", ["data", "check", rel(ctx, d)], "phantom_0002")


# ================================================================================ data integrity
def _restore_split(ctx: Ctx) -> None:
    shutil.copy(ctx.p("split.json.orig"), ctx.p("split.json"))


@case("int-split-rewritten", "integrity", "the split file rewritten under a trained model (`data split --force "
      "--split-seed 1` at the same path), then `evaluate`", "refused: clear error naming the leaked images (now test, "
      "were trained on)")
def _(ctx):
    old = json.loads(ctx.p("split.json").read_text())
    try:
        p1 = ctx.run("data", "split", "ph", "--out", "split.json", "--seeds", "0", "--split-seed", "1", "--force")
        new = json.loads(ctx.p("split.json").read_text())
        leaked = sorted(set(old["train"]) & set(new["test"]))
        p = ctx.run("evaluate", "-k", "run/checkpoints/best.ckpt", "-o", "cases/leak_eval")
        named = [i for i in leaked if i in error_block(p)]
        ok = p.rc not in (0, None) and bool(named) and bool(leaked)
        note = f"{len(leaked)} train images are now test; the message names {len(named)}: {', '.join(named[:4])}"
        return Outcome(p, ok, note, [p1, p], command=f"{p1.command} && {p.command}", force=None if leaked else "unclear error")
    finally:
        _restore_split(ctx)


@case("int-split-rewritten-allowed", "integrity", "the same, evaluated with `--allow-changed-data`",
      "scores, with a warning on the console and recorded in the result file")
def _(ctx):
    try:
        p1 = ctx.run("data", "split", "ph", "--out", "split.json", "--seeds", "0", "--split-seed", "1", "--force")
        out = fresh(ctx, "leak_allowed")
        p = ctx.run("evaluate", "-k", "run/checkpoints/best.ckpt", "-o", rel(ctx, out), "--allow-changed-data")
        res = list(out.rglob("*.json"))
        recorded = any("warn" in f.read_text().lower() for f in res)
        warned = "warn" in p.text.lower()
        return Outcome(p, recorded and warned, f"console warning: {warned}; recorded in {[f.name for f in res]}: {recorded}",
                       [p1, p], command=f"{p1.command} && {p.command}", pattern="warn")
    finally:
        _restore_split(ctx)


@case("int-split-hand-edited", "integrity", "the split file edited by hand (a train id moved to test); `evaluate`",
      "refused: clear error saying the split changed since training, naming the file")
def _(ctx):
    try:
        s = json.loads(ctx.p("split.json").read_text())
        moved = s["train"].pop(0)
        s["test"].append(moved)
        ctx.p("split.json").write_text(json.dumps(s, indent=1))
        p = ctx.run("evaluate", "-k", "run/checkpoints/best.ckpt", "-o", "cases/edited_eval")
        return Outcome(p, *mentions(p, "split.json"), [p], extra={"moved": moved})
    finally:
        _restore_split(ctx)


def _replace_test_image(ctx: Ctx) -> tuple[str, bytes]:
    s = json.loads(ctx.p("split.json").read_text())
    tid = s["test"][0]
    f = ctx.p("ph", "images", f"{tid}.png")
    orig = f.read_bytes()
    a = np.asarray(Image.open(f).convert("L")).copy()
    a[:8] = 255  # a visibly edited frame
    png(f, a)
    return tid, orig


@case("int-image-replaced", "integrity", "a test image replaced after the split was written; `evaluate`",
      "refused: clear error naming the changed image")
def _(ctx):
    tid, orig = _replace_test_image(ctx)
    try:
        p = ctx.run("evaluate", "-k", "run/checkpoints/best.ckpt", "-o", "cases/replaced_eval")
        return Outcome(p, *mentions(p, tid), [p])
    finally:
        ctx.p("ph", "images", f"{tid}.png").write_bytes(orig)


@case("int-image-replaced-pin", "integrity", "a test image replaced after the split was written; `data pin SPLIT "
      "--data ph` (the check)", "lists the changed image, non-zero exit")
def _(ctx):
    tid, orig = _replace_test_image(ctx)
    try:
        p = ctx.run("data", "pin", "split.json", "--data", "ph")
        ok, note = mentions(p, tid, where="all")
        return Outcome(p, ok and p.rc != 0, note + f"; exit {p.rc}", [p], pattern=tid)
    finally:
        ctx.p("ph", "images", f"{tid}.png").write_bytes(orig)


@case("int-split-exists", "integrity", "`data split` over an existing split file without `--force`",
      "clear error naming the file and --force; the file unchanged")
def _(ctx):
    before = digest(ctx.p("split.json"))
    p = ctx.run("data", "split", "ph", "--out", "split.json", "--seeds", "0", "--split-seed", "3")
    same = digest(ctx.p("split.json")) == before
    if not same:
        _restore_split(ctx)
    return Outcome(p, *both(mentions(p, "split.json", "--force"), (same, "file unchanged" if same else "FILE REPLACED")), [p])


# ================================================================================ faults
def _fault_args(out: str) -> list[str]:
    return ["train", "segment", "--out", out, *FAULT]


def _wait(pred: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    t = time.time() + timeout
    while time.time() < t:
        if pred():
            return True
        time.sleep(poll)
    return False


def _resume_and_check(ctx: Ctx, run: Path, epochs_at_kill: int, kill_what: str, first: Proc, extra_procs=(),
                      partial: bool = True) -> Outcome:
    """``--resume`` a killed run; then check: it completes, metrics.csv has every epoch once, no orphans."""
    state = ckpt_state(run / "checkpoints" / "last.ckpt") if (run / "checkpoints" / "last.ckpt").exists() else None
    orph_before = orphans(run)
    procs = [first, *extra_procs]
    p = ctx.run("train", "segment", "--out", rel(ctx, run), "--resume")
    procs.append(p)
    steps = [f"sonokit {shlex.join(first.args)}", kill_what, p.command]
    rerun = None
    if state is None and p.rc != 0:  # killed before the first checkpoint: --resume refuses; start again
        rerun = ctx.run(*_fault_args(rel(ctx, run)))
        procs.append(rerun)
        steps.append(rerun.command)
    final = rerun or p
    done = (run / "checkpoints" / "last.ckpt").exists()
    end = ckpt_state(run / "checkpoints" / "last.ckpt") if done else None
    ok_m, note_m = metrics_intact(run, FAULT_EPOCHS)
    left = orphans(run)
    lost = epochs_at_kill - (state["epochs_done"] if state else 0)
    notes = [f"at the kill: {epochs_at_kill} epochs finished, last.ckpt "
             + (f"held {state['epochs_done']} epochs (step {state['global_step']})" if state else "absent"),
             f"epochs lost: {lost}" + (" (+ the partial epoch in progress)" if partial else ""),
             f"orphan .tmp after the kill: {orph_before or 'none'}; after the resume: {left or 'none'}",
             note_m, f"resume exit {p.rc}" + (f" ({relevant_line(p)}), rerun exit {rerun.rc}" if rerun else "")]
    refused = rerun is None or (p.rc not in (0, None) and bool(error_block(p)))  # --resume with nothing to resume
    ok = final.rc == 0 and end is not None and end["epochs_done"] == FAULT_EPOCHS and ok_m and not left and lost <= 1 and refused
    return Outcome(p, ok, "; ".join(notes), procs, command=" ; ".join(steps), force="handled" if ok else None,
                   extra={"epochs_lost": lost, "orphans_after_kill": orph_before, "orphans_after_resume": left,
                          "metrics_intact": ok_m, "state_at_kill": state, "state_end": end},
                   pattern="resum|no checkpoint|holds no|removed")


def _kill(p: subprocess.Popen, sig=signal.SIGKILL) -> None:
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


@case("fault-kill9-loading", "fault", "`kill -9` of `train segment` while it reads its data (run folder created, "
      "no checkpoint yet), then `--resume`", "--resume says there is no checkpoint yet; a plain rerun trains; "
      "metrics.csv complete, no orphan .tmp")
def _(ctx):
    run = fresh(ctx, "kill_loading") / "run"
    args = _fault_args(rel(ctx, run))
    t0 = time.time()
    pr = ctx.popen(*args)
    _wait(lambda: run.exists(), 300, 0.005)
    seen = sorted(str(x.relative_to(run)) for x in run.rglob("*")) if run.exists() else []
    _kill(pr)
    first = communicate(pr, args, t0)
    o = _resume_and_check(ctx, run, 0, f"kill -9 as soon as the run folder appeared (it held: {seen or 'nothing'})", first)
    o.extra["files_at_kill"] = seen
    return o


def _start_and_wait_epoch(ctx: Ctx, run: Path) -> tuple[subprocess.Popen, list[str], float]:
    args = _fault_args(rel(ctx, run))
    t0 = time.time()
    pr = ctx.popen(*args)
    _wait(lambda: len(metrics_rows(run)) >= 1 or pr.poll() is not None, 600, 0.02)
    return pr, args, t0


@case("fault-kill9-mid-epoch", "fault", "`kill -9` halfway through epoch 2 of 4, then `--resume`",
      "at most the epoch in progress lost; the resumed run completes 4 epochs; metrics.csv has each epoch once; no "
      "orphan .tmp")
def _(ctx):
    run = fresh(ctx, "kill_mid") / "run"
    pr, args, t0 = _start_and_wait_epoch(ctx, run)
    rows = metrics_rows(run)
    time.sleep(0.5 * float(rows[0]["seconds"]) if rows else 0)
    done = len(metrics_rows(run))
    _kill(pr)
    first = communicate(pr, args, t0)
    return _resume_and_check(ctx, run, done, f"kill -9 mid-epoch ({done} epochs finished)", first)


@case("fault-kill9-checkpoint-write", "fault", "`kill -9` while last.ckpt is being written (a `.last.ckpt.*.tmp` "
      "seen), then `--resume`", "the previous last.ckpt intact; the orphan .tmp removed on resume (and said); "
      "the run completes; metrics.csv intact")
def _(ctx):
    run = fresh(ctx, "kill_write") / "run"
    ck = run / "checkpoints"
    args = _fault_args(rel(ctx, run))
    t0 = time.time()
    pr = ctx.popen(*args)
    _wait(lambda: (ck / "last.ckpt").exists() or pr.poll() is not None, 600, 0.01)  # the first write is done
    seen = _wait(lambda: bool(list(ck.glob(".last.ckpt.*.tmp"))) or pr.poll() is not None, 600, 0.001)
    tmp = [x.name for x in ck.glob(".last.ckpt.*.tmp")]
    done = len(metrics_rows(run))
    _kill(pr)
    first = communicate(pr, args, t0)
    o = _resume_and_check(ctx, run, done, f"kill -9 while {tmp or 'last.ckpt'} was being written ({done} epochs finished)",
                          first)
    said = "removed" in o.procs[1].text and ".tmp" in o.procs[1].text
    if o.extra["orphans_after_kill"]:
        o.passed = o.passed and said
        o.note += "; the resume reported removing the orphan" if said else "; the resume did NOT report the orphan"
        o.force = "handled" if o.passed else None
    else:
        o.note += "; (the kill landed after the rename: no orphan to clean)"
    o.extra["tmp_seen"] = seen and bool(tmp)
    return o


@case("fault-sigterm-mid-epoch", "fault", "SIGTERM halfway through epoch 2 of 4, then `--resume`",
      "exit 130 with an `interrupted:` message naming last.ckpt and --resume; run.json status interrupted; the resume "
      "completes 4 epochs, metrics.csv intact")
def _(ctx):
    run = fresh(ctx, "sigterm") / "run"
    pr, args, t0 = _start_and_wait_epoch(ctx, run)
    rows = metrics_rows(run)
    time.sleep(0.5 * float(rows[0]["seconds"]) if rows else 0)
    done = len(metrics_rows(run))
    pr.send_signal(signal.SIGTERM)
    first = communicate(pr, args, t0, timeout=300)
    status = json.loads((run / "run.json").read_text()).get("status") if (run / "run.json").exists() else None
    msg_ok, msg_note = mentions(first, "interrupted", "--resume", "last.ckpt", where="all")
    o = _resume_and_check(ctx, run, done, f"SIGTERM mid-epoch ({done} epochs finished)", first, partial=False)
    o.passed = o.passed and first.rc == 130 and msg_ok and status == "interrupted"
    o.force = "handled" if o.passed else None
    o.note = f"SIGTERM: exit {first.rc}, {msg_note}, run.json status {status!r}; " + o.note
    o.extra.update({"sigterm_exit": first.rc, "sigterm_line": relevant_line(first, "interrupted")})
    return o


@case("fault-full-disk", "fault", "full disk: `train segment` (3 epochs) into a tmpfs with room for the first "
      "epoch's last.ckpt + best.ckpt only; then space freed (tmpfs grown) and `--resume`",
      "clear error naming the file and the full disk; the previous checkpoints intact and no .tmp left; "
      "the resume completes")
def _(ctx):
    d = fresh(ctx, "full_disk")
    mnt = d / "disk"
    mnt.mkdir()
    size = ctx.p("run", "checkpoints", "last.ckpt").stat().st_size
    mb = (2 * size + size // 2) // 2**20 + 1
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        return _full_disk_ulimit(ctx, d, r.stderr.strip())
    try:
        run = mnt / "run"
        args = ["train", "segment", "--out", rel(ctx, run), *_set(SEG, "optim.epochs", "3")]
        p = ctx.run(*args)
        ck = run / "checkpoints"
        intact = (ck / "last.ckpt").exists()
        st = ckpt_state(ck / "last.ckpt") if intact else None
        best_ok = (ck / "best.ckpt").exists() and ckpt_state(ck / "best.ckpt")["global_step"] > 0
        left = orphans(run)
        full = any(w in error_block(p).lower() for w in ("no space", "disk full", "is full"))
        ok_e, note_e = full, "says the disk is full" if full else "does not say the disk is full"
        names = any(x in error_block(p) for x in ("last.ckpt", "best.ckpt", "checkpoints"))
        subprocess.run(["mount", "-o", f"remount,size={4 * mb}m", str(mnt)], check=True)
        p2 = ctx.run("train", "segment", "--out", rel(ctx, run), "--resume")
        end = ckpt_state(ck / "last.ckpt") if (ck / "last.ckpt").exists() else None
        ok_m, note_m = metrics_intact(run, 3)
        notes = [f"tmpfs of {mb} MiB (checkpoint {size / 2**20:.1f} MiB)", f"training exit {p.rc}", note_e,
                 "error names the checkpoint file" if names else "error does not name the checkpoint file",
                 f"last.ckpt after the failure: {st}", f"best.ckpt loadable: {best_ok}", f"orphan .tmp: {left or 'none'}",
                 f"after freeing space, resume exit {p2.rc}, {note_m}"]
        ok = (p.rc not in (0, None) and ok_e and names and st is not None and st["epochs_done"] >= 1 and best_ok
              and not left and p2.rc == 0 and end is not None and end["epochs_done"] == 3 and ok_m)
        o = Outcome(p, ok, "; ".join(notes), [p, p2], command=f"mount -t tmpfs -o size={mb}m tmpfs {rel(ctx, mnt)} ; "
                    f"{p.command} ; mount -o remount,size={4 * mb}m {rel(ctx, mnt)} ; {p2.command}")
        o.extra.update({"state_after_failure": st, "orphans": left, "resume_exit": p2.rc, "tmpfs_mib": mb})
        if ok:
            o.force = "clear error"
        return o
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _full_disk_ulimit(ctx: Ctx, d: Path, why: str) -> Outcome:
    """Fallback when tmpfs cannot be mounted: a file size limit (``ulimit -f``) below one checkpoint."""
    import resource

    size = ctx.p("run", "checkpoints", "last.ckpt").stat().st_size
    run = d / "run"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    p = ctx.run("train", "segment", "--out", rel(ctx, run), *SEG, preexec=limit)
    left = orphans(run) if run.exists() else []
    ok_e, note_e = mentions(p, "last.ckpt")
    return Outcome(p, ok_e and not left, f"tmpfs unavailable ({why}); ulimit -f {size // 2} bytes; {note_e}; orphans {left}",
                   [p], command=f"ulimit -f {size // 2048} ; {p.command}")


# ================================================================================ driver
def snapshot(work: Path) -> tuple[Path, str]:
    """Copy src/ (and configs/) into ``work/snapshot`` and check that the copy imports and runs."""
    for attempt in range(20):
        snap = work / "snapshot"
        if snap.exists():
            shutil.rmtree(snap)
        shutil.copytree(REPO / "src", snap / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(REPO / "configs", snap / "configs")
        env = {**os.environ, "PYTHONPATH": str(snap / "src")}
        code = ("import sonokit, sonokit.cli, sonokit.tasks, sonokit.runs, sonokit.inference, sonokit.evaluation, "
                "sonokit.enhance, sonokit.serialization; print(sonokit.__file__)")
        r = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True)
        r2 = subprocess.run(ENTRY + ["--help"], env=env, capture_output=True, text=True)
        if r.returncode == 0 and str(snap) in r.stdout and r2.returncode == 0:
            h = hashlib.sha1()
            for f in sorted((snap / "src").rglob("*.py")):
                h.update(str(f.relative_to(snap)).encode() + f.read_bytes())
            return snap, h.hexdigest()[:12]
        print(f"snapshot {attempt + 1}: the tree does not import yet ({(r.stderr or r2.stderr).strip().splitlines()[-1:]}); "
              "waiting", flush=True)
        time.sleep(30)
    raise SystemExit("the working tree never imported cleanly; giving up")


def setup(ctx: Ctx, snap: Path) -> list[dict]:
    steps = [
        ["simulate", "phantom", "--out", "ph", "--n", "24", "--size", "48"],
        ["data", "split", "ph", "--out", "split.json", "--seeds", "0"],
        ["train", "segment", "--out", "run", *SEG],
        ["train", "enhance", "--config", str(snap / "configs" / "enhance_phantom_cpu.yaml"), "--out", "enh", *ENH],
        ["train", "classify", "--out", "cls", *CLS],
    ]
    log = []
    for a in steps:
        p = ctx.run(*a)
        log.append({"command": p.command.replace(str(snap) + "/", ""), "exit": p.rc, "seconds": round(p.seconds, 1)})
        print(f"  setup: {p.command[:100]} -> exit {p.rc} ({p.seconds:.0f}s)", flush=True)
        if p.rc != 0:
            raise SystemExit(f"setup failed: {p.command}\n{p.err[-3000:]}")
    shutil.copy(ctx.p("split.json"), ctx.p("split.json.orig"))
    return log


def git(*args: str) -> str:
    try:
        return subprocess.check_output(["git", *args], cwd=REPO, text=True, stderr=subprocess.DEVNULL).strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def md_cell(s: str, n: int = 220) -> str:
    s = " ".join(str(s).split())
    s = s if len(s) <= n else s[: n - 1] + "…"
    return s.replace("|", "\\|")


def write(rows: list[dict], meta: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    doc = {"benchmark": "reliability", **meta, "counts": counts, "cases": rows}
    (RESULTS / "reliability.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    bad = [r for r in rows if r["verdict"] not in CLEAN]
    lines = [
        "# Reliability: bad inputs and faults",
        "",
        f"Every case runs as a real `sonokit` process (`python -c \"from sonokit.cli import main; main()\" ...`, "
        f"`COLUMNS=200`) in a temporary folder holding a simulated phantom (24 images, 48 px), its split, and tiny "
        f"segmentation, enhancement and classification runs. Commit `{meta['commit']}`"
        + (f" with uncommitted changes in {meta['dirty_src_files']} file(s) under src/" if meta["dirty_src_files"] else "")
        + f"; library run from a snapshot of src/ (digest `{meta['src_digest']}`) taken {meta['started']}. "
        f"{meta['machine']}. {len(rows)} cases in {meta['seconds'] / 60:.1f} min. Produced by `{meta['command']}`.",
        "",
        "Verdicts: **clear error** (non-zero exit, an `error:` line or usage-error box naming the file or option, no "
        "traceback); **handled** (exit 0/1 with the bad input reported and the rest done, or a valid input processed "
        "correctly, or a killed run resumed intact); **traceback**; **silent** (exit 0, the bad thing neither reported "
        "nor refused, found by an explicit check per case); **unclear error** (non-zero exit without a message naming "
        "the file/option, or the rest not done); **timeout**.",
        "",
        "| verdict | cases |",
        "|---|---|",
        *[f"| {v} | {n} |" for v, n in counts.items()],
        f"| **total** | {len(rows)} |",
        "",
        f"Tracebacks: **{counts['traceback']}**; silent results: **{counts['silent']}**; other non-clean: "
        f"**{counts['unclear error'] + counts['timeout']}**.",
        "",
        "| id | case | expected | observed | verdict |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        v = r["verdict"] if r["verdict"] in CLEAN else f"**{r['verdict'].upper()}**"
        obs = f"exit {r['exit']}: {r['line']}" + (f" — {r['check']}" if r["check"] else "")
        lines.append(f"| {r['id']} | {md_cell(r['case'], 160)} | {md_cell(r['expected'], 160)} | {md_cell(obs, 420)} | {v} |")
    if bad:
        lines += ["", "## Not clean", ""]
        for r in bad:
            lines += [f"### {r['id']} — {r['verdict']}", "", f"{r['case']}. Expected: {r['expected']}.", "",
                      f"Observed: exit {r['exit']}; {r['check']}." + (f" Raised at `{r['raised_at']}`." if r.get("raised_at") else ""),
                      "", "```", r["command"], "```", "", "Output (tail):", "", "```", r["output_tail"].rstrip(), "```", ""]
    lines += ["", "## Setup", "", *[f"- `{s['command']}` → exit {s['exit']} ({s['seconds']} s)" for s in meta["setup"]], ""]
    (RESULTS / "reliability.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="run only the cases whose id contains one of these strings")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--no-write", action="store_true", help="print the results; do not write benchmarks/results/")
    ap.add_argument("--work", type=Path, help="use (and keep) this folder instead of a temporary one")
    a = ap.parse_args()
    t_start = time.time()
    work = a.work.resolve() if a.work else Path(tempfile.mkdtemp(prefix="sonokit_reliability_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}", flush=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    snap, src_digest = snapshot(work)
    sys.path.insert(0, str(snap / "src"))
    ctx = Ctx(work, snap / "src")
    setup_log = setup(ctx, snap) if not ctx.p("cls", "checkpoints", "best.ckpt").exists() else []
    if not ctx.p("split.json.orig").exists():
        shutil.copy(ctx.p("split.json"), ctx.p("split.json.orig"))
    rows = []
    for cid, group, what, expected, fn in CASES:
        if a.only and not any(s in cid for s in a.only):
            continue
        t0 = time.time()
        try:
            o = fn(ctx)
        except Exception as e:  # noqa: BLE001  a bug of this script, not of sonokit: say so and go on
            import traceback

            print(f"[{cid}] HARNESS ERROR: {e!r}\n{traceback.format_exc()}", flush=True)
            rows.append({"id": cid, "group": group, "case": what, "expected": expected, "command": "", "exit": None,
                         "line": f"harness error: {e!r}", "check": "", "verdict": "unclear error", "seconds": 0,
                         "output_tail": traceback.format_exc()})
            continue
        v = o.force or verdict(o.proc, o.passed, o.procs or [o.proc])
        if any(TB in q.text for q in (o.procs or [o.proc])):
            v = "traceback"
        tb_proc = next((q for q in (o.procs or [o.proc]) if TB in q.text), o.proc)
        row = {"id": cid, "group": group, "case": what, "expected": expected,
               "command": (o.command or o.proc.command).replace(str(work) + "/", ""), "exit": o.proc.rc,
               "line": relevant_line(tb_proc, o.pattern), "check": o.note, "verdict": v,
               "seconds": round(time.time() - t0, 1), "raised_at": raised_at(tb_proc.text) if v == "traceback" else "",
               "output_tail": "\n".join((tb_proc.err.rstrip() + "\n" + tb_proc.out.rstrip()).strip().splitlines()[-30:]),
               **({"details": o.extra} if o.extra else {})}
        rows.append(row)
        print(f"[{cid}] {v:13s} exit {o.proc.rc} ({row['seconds']:.0f}s): {row['line'][:150]} | {o.note}", flush=True)
    seconds = time.time() - t_start
    cmd = "python benchmarks/reliability.py" + (" --only " + " ".join(a.only) if a.only else "")
    import platform

    meta = {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty_src_files": len([ln for ln in git("status", "--porcelain", "--", "src").splitlines() if ln.strip()]),
            "src_digest": src_digest, "started": started, "seconds": round(seconds, 1), "command": cmd,
            "machine": f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores, "
                       "OMP_NUM_THREADS=1", "setup": setup_log}
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    print(f"{len(rows)} cases in {seconds / 60:.1f} min: " + ", ".join(f"{v} {n}" for v, n in counts.items()), flush=True)
    if not a.no_write:
        write(rows, meta)
        print(f"wrote {RESULTS / 'reliability.json'} and {RESULTS / 'reliability.md'}")
    if not (a.keep or a.work):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
