"""Your own folder of images, audited before training (lesson 07).

``audit_folder(path)`` walks a folder exactly as ``data.load_folder`` does (same extensions,
same class-folder rule, same order) and reports what a student should know before training on
it: counts per class, sizes, colour modes, EXIF rotations, unreadable
files, exact and near duplicates, and how many images will be upscaled.
``make_sample_folder(path)`` writes an offline folder with all of these problems in it, cut
from the two photographs scikit-learn ships, so the lesson has something to audit.
``dhash`` / ``hamming`` / ``hamming_matrix`` find near duplicates (and, later, generated
images that copy a training image).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from genimg_course.common.data import IMAGE_EXTENSIONS, _open_image, folder_classes, image_file_check

SAMPLE_CLASSES = ("china", "flower")  # the stems of scikit-learn's two sample photographs
MARKER = ".genimg_sample_folder"  # written last: a folder holding it is complete, made with its parameters
EXIF_ORIENTATION = 0x0112  # the EXIF tag; 1 = upright, 3 = upside down, 6 / 8 = rotated 90 degrees
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's convert("L")
SMALL_DATASET = 100  # below this many images a generative model memorises its training set
LIST_AT_MOST = 8  # report lines per listing before "... and N more"


# ----------------------------------------------------------------------------- hashing
def dhash(image: Image.Image | torch.Tensor, size: int = 8) -> torch.Tensor:
    """Difference hash: bool tensor (size*size,), or (B, size*size) for a batch (B, C, H, W).

    Gray, shrink to (size + 1) x size pixels, and keep one bit per pair of horizontal
    neighbours: is the right one brighter? Shrinking throws away detail, compression noise
    and small shifts, so near-identical pictures get hashes a few bits apart, different ones
    about half the bits (32 of 64) apart. ``image``: a PIL image, or a float tensor
    (C, H, W) / (B, C, H, W) in [-1, 1] with C = 1 or 3.
    """
    # Our own rather than the `imagehash` package: it is not a course dependency, and the whole
    # algorithm is the five lines below.
    if not isinstance(size, int) or size < 2:
        raise ValueError(f"dhash(size=...) must be an int >= 2, got {size!r}")
    if isinstance(image, Image.Image):  # PIL's gray, then the tensor path: both kinds hash alike
        gray = image.convert("L")
        factor = min(gray.width // (4 * (size + 1)), gray.height // (4 * size))
        if factor > 1:
            gray = gray.reduce(factor)  # a big photo: a cheap box shrink first
        x = torch.from_numpy(np.array(gray, dtype=np.float32)).div(127.5).sub(1)[None]  # (1, H, W)
    elif isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4) or image.shape[-3] not in (1, 3):
            raise ValueError(f"dhash needs a tensor (C, H, W) or (B, C, H, W) with C = 1 or 3, "
                             f"got {tuple(image.shape)}")
        x = image.float()
        if x.shape[-3] == 3:
            x = (x * torch.tensor(LUMA, device=x.device).view(3, 1, 1)).sum(-3, keepdim=True)
    else:
        raise TypeError(f"dhash needs a PIL image or a torch.Tensor, got {type(image).__name__}")
    small = F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=(size, size + 1), mode="bilinear",
                          antialias=True, align_corners=False)[:, 0]  # (B, size, size + 1)
    # is the right neighbour brighter? By more than float32's resampling noise (1e-4, far below one 8-bit grey level,
    # 2/255 here): a flat image then hashes to no bits, as imagehash's does (tests/test_oracles.py)
    bits = (small[..., 1:] > small[..., :-1] + 1e-4).flatten(-2)
    return bits if x.ndim == 4 else bits[0]


def hamming(a: torch.Tensor, b: torch.Tensor) -> int | torch.Tensor:
    """Number of differing bits between hashes: an int for two hashes, a tensor when batched (broadcasts)."""
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"hamming: hashes of different lengths, {a.shape[-1]} and {b.shape[-1]} bits")
    d = (a != b).sum(-1)
    return int(d) if d.ndim == 0 else d


def hamming_matrix(hashes: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
    """All pairwise Hamming distances: (N, bits) bool [, (M, bits)] -> (N, M) int64 (M = N without ``other``).

    One matrix product instead of N^2 comparisons: bits where a is 1 and b is 0, plus the reverse.
    """
    other = hashes if other is None else other
    if hashes.ndim != 2 or other.ndim != 2 or hashes.shape[1] != other.shape[1]:
        raise ValueError(f"hamming_matrix needs (N, bits) and (M, bits) hashes, got {tuple(hashes.shape)} "
                         f"and {tuple(other.shape)}")
    a, b = hashes.float(), other.float()
    return (a @ (1 - b).T + (1 - a) @ b.T).round().long()


# ----------------------------------------------------------------------------- audit
@dataclass
class FolderAudit:
    """What ``audit_folder`` found; ``report()`` says it in words.

    ``files[i]`` (relative to ``root``) is item ``i`` of ``data.load_folder(root)``, so the
    duplicate lists map to dataset indices: ``duplicate_indices()`` gives those to drop.
    """

    root: Path
    image_size: int
    channels: int
    near: int
    files: list[str] = field(default_factory=list)  # readable images, in load_folder's order
    labels: list[int] = field(default_factory=list)  # class index of each file, as load_folder's targets
    classes: dict[str, int] = field(default_factory=dict)  # class name -> number of readable images
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (w, h) as stored
    modes: Counter = field(default_factory=Counter)  # PIL modes as stored
    exif_rotated: list[str] = field(default_factory=list)  # EXIF orientation != 1: loading turns them upright
    sixteen_bit: list[str] = field(default_factory=list)  # 16/32-bit greyscale: loading rescales them to 8 bits
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), as load_folder warns
    exact_duplicates: list[list[str]] = field(default_factory=list)  # groups with identical pixels
    near_duplicates: list[tuple[str, str, int]] = field(default_factory=list)  # (a, b, dhash distance)
    smallest_side: int = 0
    upscaled: list[str] = field(default_factory=list)  # short side < image_size
    hashes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 64, dtype=torch.bool), repr=False)

    @property
    def n_images(self) -> int:
        return len(self.files)

    @property
    def empty_classes(self) -> list[str]:
        """Class folders without one readable image: ImageFolder (so load_folder) refuses the whole folder."""
        return [name for name, count in self.classes.items() if count == 0]

    def duplicate_indices(self) -> list[int]:
        """Sorted dataset indices to drop so that one image (the first) of each exact/near-duplicate group stays."""
        index = {f: i for i, f in enumerate(self.files)}
        parent = list(range(len(self.files)))  # union-find: near pairs chain groups together

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        links = [(g[0], f) for g in self.exact_duplicates for f in g[1:]] + [(a, b) for a, b, _ in self.near_duplicates]
        for a, b in links:
            ra, rb = find(index[a]), find(index[b])
            parent[max(ra, rb)] = min(ra, rb)  # the root of a group is its smallest index
        return sorted(i for i in range(len(parent)) if find(i) != i)

    def report(self) -> str:
        """A short summary to read before training: what the model will see, and what to fix."""
        n, mode = self.n_images, "RGB" if self.channels == 3 else "L"
        lines = [f"Folder {str(self.root)!r}: {n} readable image(s) in {len(self.classes)} class(es)",
                 "  " + ", ".join(f"{name}: {count}" for name, count in self.classes.items())]
        for name in self.empty_classes:
            lines.append(f"  class folder {name!r} has no readable image: load_folder refuses the whole folder "
                         f"until you add images to it or remove it")
        if n:
            ws, hs = [w for w, _ in self.sizes], [h for _, h in self.sizes]
            lines.append(f"Sizes (w x h, as stored): width {min(ws)}-{max(ws)}, height {min(hs)}-{max(hs)} px, "
                         f"median {statistics.median(ws):g}x{statistics.median(hs):g}; smallest side "
                         f"{self.smallest_side} px")
            if self.upscaled:
                lines.append(f"  {len(self.upscaled)} image(s) have a side under {self.image_size} px and will be "
                             f"upscaled (blurry) to {self.image_size}x{self.image_size}")
                lines += _listing(self.upscaled)
            else:
                lines.append(f"  none is smaller than {self.image_size} px: no image will be upscaled")
            wide = sum(max(w, h) > 1.5 * min(w, h) for w, h in self.sizes)
            if wide:
                lines.append(f"  {wide} image(s) have one side over 1.5x the other: the centre crop to a square "
                             f"cuts their ends off")
            modes = ", ".join(f"{m} {c}" for m, c in self.modes.most_common())
            lines.append(f"Modes (as stored): {modes}; all are converted to {mode} on loading")
            if self.modes.get("RGBA") or self.modes.get("LA") or self.modes.get("PA"):
                lines.append("  transparency is dropped: transparent pixels show whatever colour they hold")
            if self.sixteen_bit:
                lines.append(f"  {len(self.sixteen_bit)} 16-bit image(s): rescaled to 8 bits on loading (65535 → 255)")
                lines += _listing(self.sixteen_bit)
            lines.append(f"EXIF rotation: {len(self.exif_rotated)} image(s) carry an EXIF orientation: loading turns "
                         f"them upright, as a photo viewer shows them" if self.exif_rotated else
                         "EXIF rotation: none")
            lines += _listing(self.exif_rotated)
        lines.append(f"Skipped: {len(self.skipped)} unreadable file(s)" if self.skipped else "Skipped: none")
        lines += _listing([f"{name}: {why}" for name, why in self.skipped])
        lines.append(f"Exact duplicates: {len(self.exact_duplicates)} group(s)" if self.exact_duplicates else
                     "Exact duplicates: none")
        lines += _listing([" = ".join(group) for group in self.exact_duplicates])
        lines.append(f"Near duplicates (dhash distance <= {self.near}): {len(self.near_duplicates)} pair(s)"
                     if self.near_duplicates else f"Near duplicates (dhash distance <= {self.near}): none")
        lines += _listing([f"{a} ~ {b} (distance {d})" for a, b, d in self.near_duplicates])
        drop = self.duplicate_indices()
        if drop:
            lines.append(f"  audit.duplicate_indices() gives the {len(drop)} dataset index(es) to drop, keeping "
                         f"the first image of each group")
        if n < SMALL_DATASET:
            lines.append("Warning: fewer than 100 images: the model will memorise; expect copies of your "
                         "training images, see section 4")
        return "\n".join(lines)


def _listing(items: list[str], at_most: int = LIST_AT_MOST) -> list[str]:
    lines = [f"    {item}" for item in items[:at_most]]
    if len(items) > at_most:
        lines.append(f"    ... and {len(items) - at_most} more")
    return lines


def _walk(root: Path) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, str]]]:
    """(classes, [(path, class index)], [(relative path, reason)]): load_folder's own walk and checks.

    The same torchvision functions ImageFolder calls, with load_folder's class rule and file
    check, so the order is the dataset's. ``allow_empty``: a class folder with no readable
    image is reported rather than an error.
    """
    from torchvision.datasets import folder as tv_folder

    bad: list[tuple[str, str]] = []
    classes, class_to_idx = folder_classes(root)  # as load_folder: hidden folders are not classes
    samples = tv_folder.make_dataset(str(root), class_to_idx, is_valid_file=image_file_check(root, bad),
                                     allow_empty=True)
    return classes, samples, bad


def audit_folder(path: str | os.PathLike, image_size: int = 32, channels: int = 3, near: int = 5) -> FolderAudit:
    """Audit a folder of images the way ``data.load_folder(path, image_size, channels)`` will read it.

    Reads every image once, at full size (its pixels, as ``channels`` converts them, give the
    exact-duplicate hash) and hashes a 9x8 thumbnail for near duplicates (``dhash`` distance
    <= ``near``), so a few hundred small images take about a second.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"Image folder {str(root)!r} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is a file; audit_folder needs a folder of images.")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    if not isinstance(image_size, int) or image_size < 4:
        raise ValueError(f"image_size must be an int >= 4, got {image_size!r}")
    if not isinstance(near, int) or near < 0:
        raise ValueError(f"near (largest dhash distance of a near duplicate) must be an int >= 0, got {near!r}")

    classes, samples, bad = _walk(root)
    if not samples:
        raise ValueError(f"No readable images in {str(root)!r} (looked for {', '.join(IMAGE_EXTENSIONS)} in it and "
                         f"its sub-folders; {len(bad)} file(s) were unreadable).")
    audit = FolderAudit(root=root, image_size=image_size, channels=channels, near=near, skipped=bad)
    names = [root.name] if classes == ["."] else classes
    counts = Counter(label for _, label in samples)
    audit.classes = {name: counts[i] for i, name in enumerate(names)}
    mode = "RGB" if channels == 3 else "L"
    digests, hashes = [], []
    for p, label in samples:
        rel = os.path.relpath(p, root)
        with Image.open(p) as im:
            audit.sizes.append(im.size)
            audit.modes[im.mode] += 1
            if im.getexif().get(EXIF_ORIENTATION, 1) != 1:
                audit.exif_rotated.append(rel)
            if im.mode.startswith("I"):  # I;16, I: data._open_image rescales them to 8 bits
                audit.sixteen_bit.append(rel)
        pixels = _open_image(p, mode)  # what load_folder's loader gives, before resizing
        digests.append(hashlib.sha1(f"{pixels.mode}{pixels.size}".encode() + pixels.tobytes()).hexdigest())
        hashes.append(dhash(pixels))
        audit.files.append(rel)
        audit.labels.append(label)
        if min(audit.sizes[-1]) < image_size:
            audit.upscaled.append(rel)
    audit.smallest_side = min(min(s) for s in audit.sizes)

    groups: dict[str, list[str]] = {}
    for rel, digest in zip(audit.files, digests):
        groups.setdefault(digest, []).append(rel)
    audit.exact_duplicates = [g for g in groups.values() if len(g) > 1]
    audit.hashes = torch.stack(hashes)
    for start in range(0, len(hashes), 1024):  # row blocks: an N x N matrix of 10,000 images would not fit
        d = hamming_matrix(audit.hashes[start:start + 1024], audit.hashes)
        for i, j in (d <= near).nonzero().tolist():
            i += start
            if i < j and digests[i] != digests[j]:  # exact duplicates are listed once, above
                audit.near_duplicates.append((audit.files[i], audit.files[j], int(d[i - start, j])))
    return audit


# ----------------------------------------------------------------------------- sample folder
# Per class: which of the crops are saved in an unusual way (the rest: RGB PNG or JPEG at random).
SPECIAL_KINDS = {"china": ("cmyk", "exif", "gray_png", "gray_jpg", "rgba", "rgba", "i16"),
                 "flower": ("cmyk", "exif", "gray_png", "gray_jpg", "rgba", "rgba")}
NEAR_PLANTED = 2  # largest dhash distance of a planted near duplicate to its original
SEPARATION = 12  # dhash distance kept between any two sample crops, so only the planted duplicates are near


def make_sample_folder(path: str | os.PathLike, n_per_class: int = 150, seed: int = 0,
                       size_range: tuple[int, int] = (40, 160)) -> Path:
    """Write an offline folder of images to audit, cut from scikit-learn's two sample photographs.

    ``path/china/`` and ``path/flower/`` each hold ``n_per_class`` random crops (64-200 px of
    the photo, resized to a random w x h in ``size_range``), mostly RGB PNG and JPEG, with a few
    grayscale, RGBA and CMYK ones, one EXIF-rotated JPEG and (china) one 16-bit PNG; plus 2
    exact duplicates ("name (1).ext") and 2 near duplicates (re-saved as a poor JPEG, or cut
    1 px to the side) per class, and 3 broken files (truncated.png, empty.png, notes.jpg).
    Same seed, same bytes. A folder already made with the same parameters is returned as it is;
    an existing folder that ``make_sample_folder`` did not make is an error (nothing is overwritten).
    """
    if not isinstance(n_per_class, int) or n_per_class < 12:
        raise ValueError(f"n_per_class must be an int >= 12 (room for the special files), got {n_per_class!r}")
    if (not isinstance(size_range, (tuple, list)) or len(size_range) != 2
            or not all(isinstance(s, int) for s in size_range) or not 8 <= size_range[0] <= size_range[1]):
        raise ValueError(f"size_range must be (low, high) ints with 8 <= low <= high, got {size_range!r}")
    root = Path(path).expanduser()
    params = json.dumps({"n_per_class": n_per_class, "seed": seed, "size_range": list(size_range), "version": 1},
                        sort_keys=True)
    if root.exists():
        if not root.is_dir():
            raise NotADirectoryError(f"{str(root)!r} is a file; make_sample_folder needs a folder path.")
        marker = root / MARKER
        if marker.is_file() and marker.read_text() == params:
            return root
        if not marker.is_file() and any(root.iterdir()):
            raise FileExistsError(f"{str(root)!r} already holds files that make_sample_folder did not write; "
                                  f"choose another path (nothing was overwritten).")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.part-", dir=root.parent))
    try:  # written beside the target and moved in whole: an interrupted run leaves no half folder
        _write_sample(staging, n_per_class, seed, tuple(size_range))
        (staging / MARKER).write_text(params)
        if root.exists():
            shutil.rmtree(root)  # empty, or our own sample with other parameters
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def _write_sample(root: Path, n_per_class: int, seed: int, size_range: tuple[int, int]) -> None:
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    photos = {Path(f).stem: Image.fromarray(a) for f, a in zip(bunch.filenames, bunch.images)}
    rng = np.random.default_rng(seed)
    kept = torch.zeros(0, 64, dtype=torch.bool)  # dhash of every crop written so far, both classes
    for cls in SAMPLE_CLASSES:
        folder = root / cls
        folder.mkdir()
        photo, specials = photos[cls], SPECIAL_KINDS[cls]
        slots = dict(zip(rng.choice(n_per_class, len(specials), replace=False).tolist(), specials))
        written: dict[str, bytes] = {}
        plain: list[tuple[str, tuple[int, int, int, int], tuple[int, int]]] = []  # RGB crops: (name, box, size)
        for i in range(n_per_class):
            kind = slots.get(i) or ("png" if rng.random() < 0.5 else "jpg")
            for attempt in range(200):  # a crop too like one already written is drawn again
                box, size = _random_box(rng, photo.size, size_range)
                data, ext = _encode(photo.crop(box).resize(size, Image.LANCZOS), kind, rng)
                h = _file_dhash(data)
                if len(kept) == 0 or hamming(h, kept).min() > SEPARATION:
                    break
            else:
                raise RuntimeError(f"could not draw {n_per_class} distinct crops of {cls}.jpg; lower n_per_class")
            kept = torch.cat([kept, h[None]])
            name = f"{cls}_{i:03d}.{ext}"
            written[name] = data
            if kind in ("png", "jpg"):
                plain.append((name, box, size))
        order = rng.permutation(len(plain)).tolist()
        for k in order[:2]:  # exact duplicates: the same bytes, as a browser names a second download
            name = plain[k][0]
            stem, ext = name.rsplit(".", 1)
            written[f"{stem} (1).{ext}"] = written[name]
        candidates = iter(order[2:])
        for how in ("jpeg", "shift"):  # near duplicates, planted well inside audit_folder's default near=5
            for k in candidates:
                name, (x0, y0, x1, y1), size = plain[k]
                stem = name.rsplit(".", 1)[0]
                if how == "jpeg":  # re-saved at low quality, as a messaging app does
                    data, _ = _encode(Image.open(io.BytesIO(written[name])).convert("RGB"), "jpg", rng, quality=30)
                    copy = f"{stem}-small.jpg"
                else:  # cut again one pixel to the right
                    data, _ = _encode(photo.crop((x0 + 1, y0, x1 + 1, y1)).resize(size, Image.LANCZOS), "png", rng)
                    copy = f"{stem}-edit.png"
                if hamming(_file_dhash(data), _file_dhash(written[name])) <= NEAR_PLANTED:
                    written[copy] = data
                    break
            else:
                raise RuntimeError(f"no crop of {cls}.jpg kept its dhash when {how!r}-copied; try another seed")
        for name, data in written.items():
            (folder / name).write_bytes(data)
    (root / "china" / "truncated.png").write_bytes(next(d for d in written.values() if d[:4] == b"\x89PNG")[:100])
    (root / "china" / "empty.png").write_bytes(b"")
    (root / "flower" / "notes.jpg").write_text("Photos from the trip: temple and flowers.\n")


def _random_box(rng: np.random.Generator, photo_size: tuple[int, int],
                size_range: tuple[int, int]) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """A random square crop box (64-200 px side, room left for a 1 px shift) and a random output (w, h)
    in ``size_range``, of aspect ratio 0.6 to 1.6 (clipped to the range)."""
    pw, ph = photo_size
    side = int(rng.integers(64, 201))
    x0, y0 = int(rng.integers(0, pw - side - 1)), int(rng.integers(0, ph - side))
    w = int(rng.integers(size_range[0], size_range[1] + 1))
    h = int(np.clip(round(w * np.exp(rng.uniform(-0.5, 0.5))), *size_range))  # aspect ratio 0.6-1.6
    return (x0, y0, x0 + side, y0 + side), (w, h)


def _encode(img: Image.Image, kind: str, rng: np.random.Generator, quality: int | None = None) -> tuple[bytes, str]:
    """The bytes of ``img`` (RGB) saved as ``kind``, and the file extension."""
    buf = io.BytesIO()
    q = quality or int(rng.integers(80, 96))
    if kind == "png":
        img.save(buf, "PNG", compress_level=1)  # fast to write
    elif kind == "jpg":
        img.save(buf, "JPEG", quality=q)
    elif kind == "gray_png":
        img.convert("L").save(buf, "PNG", compress_level=1)
    elif kind == "gray_jpg":
        img.convert("L").save(buf, "JPEG", quality=q)
    elif kind == "rgba":  # an oval cut-out: transparent corners, whose colour load_folder still shows
        w, h = img.size
        yy, xx = np.mgrid[:h, :w]
        alpha = (((xx + 0.5) / w - 0.5) ** 2 + ((yy + 0.5) / h - 0.5) ** 2 < 0.25) * 255
        rgba = img.convert("RGBA")
        rgba.putalpha(Image.fromarray(alpha.astype(np.uint8)))
        rgba.save(buf, "PNG", compress_level=1)
    elif kind == "cmyk":  # as printers' software writes them
        img.convert("CMYK").save(buf, "JPEG", quality=q)
    elif kind == "i16":  # 16-bit grayscale, as scientific cameras and scanners write them
        gray = np.asarray(img.convert("L"), dtype=np.uint16) * 257  # 0..255 -> 0..65535
        Image.fromarray(gray).save(buf, "PNG", compress_level=1)
    elif kind == "exif":  # a phone photo: pixels stored turned, EXIF orientation 6 says "turn 90 degrees clockwise"
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=q, exif=exif)
    else:
        raise ValueError(f"Unknown kind {kind!r}")
    ext = "png" if kind in ("png", "gray_png", "rgba", "i16") else "jpg"
    return buf.getvalue(), ext


def _file_dhash(data: bytes) -> torch.Tensor:
    """dhash of an encoded image as audit_folder computes it (decoded, converted to RGB)."""
    with Image.open(io.BytesIO(data)) as im:
        return dhash(im.convert("RGB"))
