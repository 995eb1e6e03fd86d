"""The inputs of ``sonokit segment`` and ``sonokit enhance``: files and folders named on the command line turned
into a plan of images to process, each with a unique output name. Pure: no torch, no pixels decoded (only
DICOM headers are read, for their frame counts).

Rules of :func:`collect_inputs`:

* A named path that does not exist raises :class:`DataError` naming it.
* A named file is an input when it is an image (``.png .jpg .jpeg .bmp .tif .tiff``) or DICOM (``.dcm``,
  ``.dicom``, or a file without suffix that starts with the DICM magic); any other named file is skipped.
* Folders are walked recursively in natural order (``x2`` before ``x10``; a folder's files, then its
  sub-folders); links to folders are not followed; the output folder (``exclude``) is never read. Hidden
  entries (``.name``) and files that are neither images nor DICOM are ignored (counted in the notes).
* A folder that holds a known dataset layout (BUSI root, HC18, UDIAT, BrEaST, DDTI, or ``images/`` with
  ``masks/``; the folder named or any sub-folder met while walking) yields that reader's images only, never its
  masks or annotations.
* In any other folder, a file whose stem is the stem of another image in the same folder followed by ``_mask``
  (``_mask``, ``_mask_1``, ``_mask_anything``) or ``_annotation`` (case-insensitive) is a ground-truth mask and
  is left out (counted in the notes). Files named together on the command line follow the same rule (a shell
  glob ``benign/*.png`` names the masks too); a mask named alone is processed.
* Skipped before reading, each with its reason: broken symbolic links, empty (zero-byte) files, DICOM files
  whose header cannot be read, non-image files named explicitly. A file named twice is processed once.
* A DICOM file with F > 1 frames gives F inputs ``NAME_f0 ... NAME_f{F-1}``.
* Output names are unique, and every renaming is reported in the notes: the file's stem; where the same stem
  occurs in different folders, the stem under its sub-folder (``a/x``, ``b/x``: written in sub-folders of the
  output folder); where stems clash in one folder, the extension is added (``x.png``, ``x.jpg`` -> ``x_png``,
  ``x_jpg``); a clash left after that gets a number (``x_2``).
"""
from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .io import IMAGE_SUFFIXES

DICOM_SUFFIXES = (".dcm", ".dicom")
LAYOUTS = ("busi", "hc18", "udiat", "breast", "ddti", "folder")  # dataset layouts whose masks are left out
_MASK_TAG = re.compile(r"_(?:mask|annotation)", re.IGNORECASE)


@dataclass(frozen=True)
class InputItem:
    """One image (or DICOM frame) to process."""

    name: str  # unique output name; may hold '/' (a sub-folder of the output folder)
    path: Path
    frame: int | None  # the frame of a multi-frame DICOM file, else None
    rel: str  # the path it came from, relative to the folder named on the command line (or as named)
    dicom: bool = False
    base: str = ""  # the output name of the whole file (``name`` without ``_fK``)


@dataclass
class InputPlan:
    items: list[InputItem] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, reason), known before reading
    notes: list[str] = field(default_factory=list)


@dataclass
class _Cand:
    path: Path
    rel: str  # posix path relative to the named folder (the name as given for a named file)
    dicom: bool
    frames: int = 1


def _kind(p: Path) -> str | None:
    """'image', 'dicom' or None (neither) for an existing file."""
    suf = p.suffix.lower()
    if suf in IMAGE_SUFFIXES:
        return "image"
    if suf in DICOM_SUFFIXES:
        return "dicom"
    if suf == "" and p.is_file():
        from .datasets.dicom import is_dicom

        return "dicom" if is_dicom(p) else None
    return None


def _broken(p: Path) -> str:
    return f"broken symbolic link (target '{os.readlink(p)}' does not exist)"


def _layout(d: Path) -> str | None:
    from .datasets import FORMATS

    for name in LAYOUTS:
        if name == "folder" and not (d / "masks").is_dir():
            continue  # images/ alone: a plain walk finds the same images (and nothing is lost beside it)
        if FORMATS.get(name).detect(d):
            return name
    return None


def _natural(s: str) -> list:
    from .datasets.base import natural_key

    return natural_key(s)


class _Collector:
    def __init__(self, exclude) -> None:
        self.plan = InputPlan()
        self.cands: list[_Cand] = []
        self.exclude = {Path(e).resolve() for e in exclude}
        self.masks = Counter()  # mask pattern -> count left out by the plain-folder rule
        self.ignored = Counter()  # suffix -> count of files that are neither images nor DICOM

    # -- folders --------------------------------------------------------------------------------------
    def walk(self, d: Path, rel: str) -> None:
        if d.resolve() in self.exclude:
            self.plan.notes.append(f"not read: '{d}' (the output folder)")
            return
        fmt = _layout(d)
        if fmt is not None and self.dataset(d, rel, fmt):
            return
        files, dirs = [], []
        for e in sorted(d.iterdir(), key=lambda q: _natural(q.name)):
            if e.name.startswith("."):
                self.ignored["hidden"] += 1
            elif e.is_symlink() and not e.exists():
                if e.suffix.lower() in (*IMAGE_SUFFIXES, *DICOM_SUFFIXES, ""):
                    self.plan.skipped.append((e, _broken(e)))
            elif e.is_dir():
                if e.is_symlink():
                    self.plan.notes.append(f"not followed: '{e}' (a symbolic link to a folder)")
                else:
                    dirs.append(e)
            elif e.is_file():
                if _kind(e) is None:
                    self.ignored[e.suffix.lower() or "(no suffix)"] += 1
                else:
                    files.append(e)
        for f in self.without_masks(files):
            self.add(f, f"{rel}{f.name}")
        for sub in dirs:
            self.walk(sub, f"{rel}{sub.name}/")

    def dataset(self, d: Path, rel: str, fmt: str) -> bool:
        """Add the images of the dataset at ``d``; False (and a note) when its reader cannot index it."""
        from .datasets import open_dataset

        try:
            reader = open_dataset(d, fmt)
        except DataError as e:
            self.plan.notes.append(f"'{d}' looks like a {fmt} dataset but is not one ({e}); read as a plain folder")
            return False
        masks = {m for r in reader.records for m in r.masks}
        seen: set[Path] = set()
        for r in reader.records:
            if r.image not in seen:
                seen.add(r.image)
                self.add(r.image, rel + r.image.relative_to(d).as_posix())
        self.plan.notes.append(f"'{d}' is a {fmt} dataset: its {len(seen)} images only; left out its "
                               f"{len(masks)} ground-truth mask file(s)")
        other = sorted(q for q in d.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file()
                       and q not in seen and q not in masks)
        if other:
            self.plan.notes.append(f"left out {len(other)} other image file(s) under '{d}' that are not part of the "
                                   f"{fmt} layout (e.g. '{other[0].relative_to(d)}'); name them to process them")
        return True

    def without_masks(self, files: list[Path]) -> list[Path]:
        """``files`` (of one folder) less the ground-truth masks of the others."""
        stems = {f.stem.lower() for f in files}
        keep = []
        for f in files:
            low = f.stem.lower()
            m = next((m for m in _MASK_TAG.finditer(low) if m.start() > 0 and low[:m.start()] in stems), None)
            if m is None:
                keep.append(f)
            else:
                self.masks["*_mask*" if m.group(0) == "_mask" else "*_Annotation*"] += 1
        return keep

    # -- files ----------------------------------------------------------------------------------------
    def add(self, f: Path, rel: str) -> None:
        if f.stat().st_size == 0:
            what = "a DICOM file" if _kind(f) == "dicom" else "a PNG/JPEG/BMP/TIFF image"
            self.plan.skipped.append((f, f"'{f}' is an empty file; expected {what}"))
            return
        if _kind(f) != "dicom":
            self.cands.append(_Cand(f, rel, False))
            return
        from .datasets.dicom import read_dicom

        try:
            ds = read_dicom(f, stop_before_pixels=True)
        except DataError as e:
            self.plan.skipped.append((f, str(e)))
            return
        self.cands.append(_Cand(f, rel, True, int(ds.get("NumberOfFrames", 1) or 1)))

    def named_masks(self, files: list[Path]) -> set[Path]:
        """The ground-truth masks among files named together (grouped by folder)."""
        by_dir: dict[Path, list[Path]] = defaultdict(list)
        for f in files:
            by_dir[f.resolve().parent].append(f)
        keep = {f for group in by_dir.values() for f in self.without_masks(group)}
        return set(files) - keep

    # -- names ----------------------------------------------------------------------------------------
    def items(self) -> list[InputItem]:
        cands, seen = [], set()
        for c in self.cands:
            key = c.path.resolve()
            if key in seen:
                self.plan.notes.append(f"'{c.path}' was named twice; processed once")
                continue
            seen.add(key)
            cands.append(c)
        names = [Path(c.rel).stem for c in cands]
        by_stem: dict[str, list[int]] = defaultdict(list)
        for i, n in enumerate(names):
            by_stem[n].append(i)
        for stem, idx in by_stem.items():
            if len(idx) < 2:
                continue
            dirs = [str(Path(cands[i].rel).parent) for i in idx]
            for i, d in zip(idx, dirs):
                sub = "" if d == "." else d + "/"
                names[i] = sub + stem if dirs.count(d) == 1 else f"{sub}{stem}_{cands[i].path.suffix.lstrip('.').lower()}"
            self.plan.notes.append("name clash: " + ", ".join(cands[i].rel for i in idx) + " -> "
                                   + ", ".join(names[i] for i in idx))
        items: list[InputItem] = []
        for c, n in zip(cands, names):
            frames = [None] if c.frames == 1 else list(range(c.frames))
            for k in frames:
                items.append(InputItem(n if k is None else f"{n}_f{k}", c.path, k, c.rel, c.dicom, n))
        return self.unique(items)

    def unique(self, items: list[InputItem]) -> list[InputItem]:
        taken = Counter(it.name for it in items)
        used: set[str] = set()
        out = []
        for it in items:
            name = it.name
            if taken[name] > 1 and name in used:
                k = 2
                while f"{name}_{k}" in taken or f"{name}_{k}" in used:
                    k += 1
                self.plan.notes.append(f"name clash: '{it.rel}' would be written as '{name}' again -> '{name}_{k}'")
                name = f"{name}_{k}"
                it = InputItem(name, it.path, it.frame, it.rel, it.dicom, name if it.frame is None else it.base)
            used.add(name)
            out.append(it)
        return out


def collect_inputs(paths, *, exclude=()) -> InputPlan:
    """The inputs to process for ``paths`` (files and folders), following the rules of this module's
    docstring. ``exclude``: folders never read (the output folder)."""
    col = _Collector(exclude)
    if any(not str(p).strip() for p in paths):  # Path("") is ".": an unset shell variable would read the whole cwd
        raise DataError("an input path is empty (an unset shell variable?); give image files, DICOM files or folders")
    paths = [Path(p) for p in paths]
    for p in paths:
        if not os.path.lexists(p):
            raise DataError(f"input '{p}' does not exist")
    masks = col.named_masks([p for p in paths if p.is_file() and _kind(p) is not None])
    for p in paths:
        if p.is_symlink() and not p.exists():
            col.plan.skipped.append((p, _broken(p)))
        elif p.is_dir():
            before = len(col.cands) + len(col.plan.skipped)
            col.walk(p, "")
            if len(col.cands) + len(col.plan.skipped) == before and p.resolve() not in col.exclude:
                raise DataError(f"folder '{p}' holds no images; expected {', '.join(IMAGE_SUFFIXES)} or DICOM files")
        elif _kind(p) is None:
            col.plan.skipped.append((p, f"'{p}' is not an image or DICOM file; expected "
                                        f"{', '.join(IMAGE_SUFFIXES)}, .dcm or a DICOM file without suffix"))
        elif p not in masks:
            col.add(p, p.name)
    col.plan.items = col.items()
    if col.masks:
        col.plan.notes.append(f"left out {sum(col.masks.values())} ground-truth mask(s) ("
                              + ", ".join(f"{n} {k}" for k, n in sorted(col.masks.items())) + ") beside their images")
    if col.ignored:
        col.plan.notes.append(f"ignored {sum(col.ignored.values())} file(s) that are not images or DICOM ("
                              + ", ".join(f"{n} {k}" for k, n in sorted(col.ignored.items())) + ")")
    return col.plan


@dataclass
class LoadedInput:
    """The pixels of one :class:`InputItem`. ``image`` (H, W) is float32 in [0, 1], or, for an image file read
    with ``lowmem_above`` below its pixel count, uint8/uint16 (see :func:`sonokit.data.io.read_image_lowmem`)."""

    image: np.ndarray
    spacing: tuple[float, float] | None
    info: dict


def read_input(item: InputItem, *, lowmem_above: int | None = None) -> LoadedInput:
    """Read an item's pixels (a DICOM item: its frame, with the pixel spacing in mm when the file records it).
    Image files with more than ``lowmem_above`` pixels are read without a float copy. Raises
    :class:`DataError` naming the file for an unreadable file or NaN/Inf pixels."""
    from .io import image_shape, read_image, read_image_lowmem

    spacing = None
    if item.dicom:
        from .datasets.dicom import dicom_frames, dicom_spacing, read_dicom

        frames, info = dicom_frames(item.path)
        k = item.frame or 0
        if k >= len(frames):
            raise DataError(f"DICOM '{item.path}' has {len(frames)} frame(s); frame {k} requested")
        image, info = frames[k], dict(info)
        spacing = dicom_spacing(read_dicom(item.path, stop_before_pixels=True))
    elif lowmem_above is not None and np.prod(image_shape(item.path)) > lowmem_above:
        image, info = read_image_lowmem(item.path)
    else:
        image, info = read_image(item.path)
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        where = f"DICOM '{item.path}' frame {item.frame}" if item.frame is not None else f"image '{item.path}'"
        raise DataError(f"{where} holds {int((~np.isfinite(image)).sum())} NaN/Inf pixel(s); expected finite values")
    return LoadedInput(image, spacing, info)
