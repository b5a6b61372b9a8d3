"""Captioned shapes, offline: the data of lesson 08 (text to image).

Each image is a *scene*: one shape (lesson 04's six), its colour and the background's (eight named colours), its size
(small or large) and its position (a 3 × 3 grid: "top left" … "bottom right"), drawn by ``data.draw_shape`` with
those attributes fixed (the angle and small jitters stay random). Its caption says the attributes in words, in one
of several phrasings ("a large red star in the top left on a blue background", "on a blue background, a big red
star in the upper left corner"), and may leave some out, so that a model learns what each word does rather than one
sentence per picture.

Two combinations never appear in training (``HELD_OUT``): blue triangles, and small shapes in the bottom right. A
model that generates them from their captions has composed words it saw apart; one that cannot has memorised
pairs. The attributes come from the drawing code, so every image's truth is known exactly.

Words are tokens (``VOCAB``, a few dozen); ``tokenize`` refuses an unknown word with the word and the vocabulary.
"""

from __future__ import annotations

import itertools
from dataclasses import astuple, dataclass, fields

import numpy as np
import torch

from genimg_course.common import data

SHAPES = data.SHAPE_CLASSES
COLOURS = {"red": (215, 40, 40), "orange": (240, 140, 20), "yellow": (235, 215, 40), "green": (40, 160, 60),
           "blue": (40, 90, 225), "purple": (135, 55, 185), "white": (240, 240, 240), "black": (25, 25, 25)}
SIZES = ("small", "large")
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
RADIUS = {"small": (0.11, 0.14), "large": (0.19, 0.23)}  # fractions of the image side
COLOUR_JITTER = 12  # ± per channel, so that a colour is a region, not one RGB value
CENTRE_JITTER = 0.04  # ± fraction of the side around the grid cell's centre (0.25, 0.5, 0.75)
MIN_CONTRAST = 150  # L1 distance in RGB between a shape's colour and its background's

# the phrasings, each attribute value's words (synonyms) -----------------------------------------------------------
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
POSITION_WORDS = {
    "top left": ("in the top left", "in the upper left corner"),
    "top": ("at the top", "in the top middle"),
    "top right": ("in the top right", "in the upper right corner"),
    "left": ("on the left", "at the left"),
    "centre": ("in the centre", "in the middle"),
    "right": ("on the right", "at the right"),
    "bottom left": ("in the bottom left", "in the lower left corner"),
    "bottom": ("at the bottom", "in the bottom middle"),
    "bottom right": ("in the bottom right", "in the lower right corner"),
}
BACKGROUND_WORDS = ("on a {} background", "against a {} background")
HELD_OUT = ({"shape": "triangle", "colour": "blue"}, {"size": "small", "position": "bottom right"})


@dataclass(frozen=True)
class Scene:
    """What one image shows: the attributes its caption describes and the reader reads back."""
    shape: str
    colour: str
    background: str
    size: str
    position: str

    def __post_init__(self):
        for name, valid in (("shape", SHAPES), ("colour", tuple(COLOURS)), ("background", tuple(COLOURS)),
                            ("size", SIZES), ("position", POSITIONS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"Scene {name} {getattr(self, name)!r} is not one of: {', '.join(valid)}")

    def index(self) -> tuple[int, ...]:
        """The attributes as class indices (shape, colour, background, size, position)."""
        return tuple(values.index(v) for values, v in zip(ATTRIBUTE_VALUES.values(), astuple(self)))


ATTRIBUTES = tuple(f.name for f in fields(Scene))
ATTRIBUTE_VALUES = {"shape": SHAPES, "colour": tuple(COLOURS), "background": tuple(COLOURS), "size": SIZES,
                    "position": POSITIONS}


def contrasting(colour: str, background: str) -> bool:
    a, b = np.array(COLOURS[colour]), np.array(COLOURS[background])
    return colour != background and np.abs(a - b).sum() >= MIN_CONTRAST


def is_held_out(scene: Scene) -> bool:
    """Whether ``scene`` has one of the combinations training never shows (``HELD_OUT``)."""
    return any(all(getattr(scene, k) == v for k, v in combo.items()) for combo in HELD_OUT)


ALL_SCENES = tuple(Scene(*values) for values in itertools.product(*ATTRIBUTE_VALUES.values())
                   if contrasting(values[1], values[2]))


def random_scenes(n: int, rng: np.random.Generator, held_out: bool | None = False) -> list[Scene]:
    """``n`` scenes drawn uniformly from the possible ones: without the held-out combinations (``False``, training),
    only them (``True``), or from all (``None``)."""
    pool = [s for s in ALL_SCENES if held_out is None or is_held_out(s) == held_out]
    return [pool[i] for i in rng.integers(0, len(pool), n)]


def draw(scene: Scene, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """The scene as a uint8 array (image_size, image_size, 3)."""
    jitter = lambda rgb: np.clip(np.array(rgb) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255)
    row, col = divmod(POSITIONS.index(scene.position), 3)
    centre = (0.25 + 0.25 * col + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER),
              0.25 + 0.25 * row + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER))
    return data.draw_shape(scene.shape, image_size, rng, colour=jitter(COLOURS[scene.colour]),
                           background=jitter(COLOURS[scene.background]), radius=rng.uniform(*RADIUS[scene.size]),
                           centre=centre)


def caption(scene: Scene, rng: np.random.Generator | None = None, drop: float = 0.0) -> str:
    """A caption of ``scene``: with ``rng``, a random phrasing, each attribute but the shape left out with
    probability ``drop``; without, the plain one ("a large red star in the top left on a blue background")."""
    pick = (lambda options: options[0]) if rng is None else (lambda options: options[rng.integers(len(options))])
    keep = (lambda: True) if rng is None else (lambda: rng.random() >= drop)
    size = pick(SIZE_WORDS[scene.size]) if keep() else None
    colour = scene.colour if keep() else None
    position = pick(POSITION_WORDS[scene.position]) if keep() else None
    background = pick(BACKGROUND_WORDS).format(scene.background) if keep() else None
    noun = " ".join(w for w in (size, colour, scene.shape) if w)
    noun = ("an " if noun[0] in "aeiou" else "a ") + noun
    order = 0 if rng is None else rng.integers(3)
    if order == 0:  # a large red star in the top left on a blue background
        parts = [noun, position, background]
    elif order == 1:  # a large red star on a blue background in the top left
        parts = [noun, background, position]
    else:  # on a blue background, a large red star in the top left
        parts = [background + "," if background else None, noun, position]
    return " ".join(p for p in parts if p)


def vocabulary() -> tuple[str, ...]:
    """Every word a caption can hold, sorted; index 0 is the padding token, 1 the empty caption (what classifier-free
    guidance's unconditional model is given: ``tokenize("")``)."""
    words = {"a", "an", ","}
    words.update(SHAPES, COLOURS)
    for options in (*SIZE_WORDS.values(), *POSITION_WORDS.values(), BACKGROUND_WORDS):
        for text in options:
            words.update(text.replace("{}", "").replace(",", " , ").split())
    return ("<pad>", "<empty>", *sorted(words))


VOCAB = vocabulary()
WORD_INDEX = {w: i for i, w in enumerate(VOCAB)}
PAD, EMPTY = 0, 1


def words(text: str) -> list[str]:
    """A caption's words: lower case, the comma its own word."""
    return text.lower().replace(",", " , ").split()


def tokenize(texts: list[str] | str, length: int | None = None) -> torch.Tensor:
    """Captions as token indices (N, L), padded with 0 (``PAD``) to the longest (or ``length``); the empty caption
    is the one token ``EMPTY``. An unknown word is a ValueError naming it, its caption and the vocabulary."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    rows = []
    for text in texts:
        unknown = [w for w in words(text) if w not in WORD_INDEX]
        if unknown:
            raise ValueError(f"unknown word {unknown[0]!r} in the prompt {text!r}; the vocabulary is: "
                             f"{' '.join(w for w in VOCAB[2:] if w != ',')} (and the comma)")
        rows.append([WORD_INDEX[w] for w in words(text)] or [EMPTY])
    width = max([len(r) for r in rows] + [length or 0, 1])
    if length is not None and width > length:
        raise ValueError(f"a caption has {width} words, more than length={length}")
    return torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.long)


def count_captions() -> int:
    """How many distinct captions the phrasings can make, over every possible scene (exact, by enumeration of the
    choices ``caption`` makes: each optional attribute kept or not, each synonym, each order)."""
    texts = set()
    for scene in ALL_SCENES:
        sizes = [None, *SIZE_WORDS[scene.size]]
        positions = [None, *POSITION_WORDS[scene.position]]
        backgrounds = [None, *(b.format(scene.background) for b in BACKGROUND_WORDS)]
        for size, colour, position, background in itertools.product(sizes, [None, scene.colour], positions,
                                                                    backgrounds):
            noun = " ".join(w for w in (size, colour, scene.shape) if w)
            noun = ("an " if noun[0] in "aeiou" else "a ") + noun
            for parts in ([noun, position, background], [noun, background, position],
                          [background + "," if background else None, noun, position]):
                texts.add(" ".join(p for p in parts if p))
    return len(texts)


def dataset(split: str = "train", n: int = 5000, seed: int = 0, image_size: int = 32,
            drop: float = 0.15) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images (N, 3, H, W) in [−1, 1], attributes (N, 5) as class indices, captions). ``split``: "train" and
    "test" (different random streams) leave out the held-out combinations; "held-out" has only them; "reader" has
    every scene, the held-out combinations included (the attribute reader judges them, so it must have seen them
    drawn: it learns from the drawing code, never from a generative model's training set). Training captions are
    random phrasings with each attribute but the shape dropped with probability ``drop``; the others are full
    captions, so that every attribute can be checked."""
    splits = ("train", "test", "held-out", "reader")
    if split not in splits:
        raise ValueError(f"split {split!r} is not one of: {', '.join(splits)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of images) must be a positive int, got {n!r}")
    rng = np.random.default_rng([seed, 8, splits.index(split)])
    scenes = random_scenes(n, rng, held_out={"train": False, "test": False, "held-out": True, "reader": None}[split])
    images = np.stack([draw(s, image_size, rng) for s in scenes])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    attrs = torch.tensor([s.index() for s in scenes], dtype=torch.long)
    texts = [caption(s, rng, drop) if split == "train" else caption(s, rng, 0.0) for s in scenes]
    return x, attrs, texts


# ----------------------------------------------------------------------------- reading the attributes back
class AttributeReader(torch.nn.Module):
    """A small CNN that reads a scene's five attributes from its picture (one head each), trained on *drawn*
    images only (``train_reader``), never on generated ones: lesson 08's judge of whether a model understood its
    caption. The feature map keeps its 4 × 4 layout up to the heads, so position can be read."""

    def __init__(self, image_size: int = 32, width: int = 32):
        super().__init__()
        w = width
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, w, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), torch.nn.BatchNorm2d(2 * w), torch.nn.ReLU(),
            torch.nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), torch.nn.BatchNorm2d(4 * w), torch.nn.ReLU(),
            torch.nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), torch.nn.BatchNorm2d(4 * w), torch.nn.ReLU(),
            torch.nn.Flatten(), torch.nn.Linear(4 * w * (image_size // 8) ** 2, 256), torch.nn.ReLU())
        self.heads = torch.nn.ModuleDict({k: torch.nn.Linear(256, len(v)) for k, v in ATTRIBUTE_VALUES.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (N, 3, H, W) in [−1, 1] → {attribute: logits (N, number of values)}."""
        h = self.features(x)
        return {k: head(h) for k, head in self.heads.items()}

    @torch.no_grad()
    def read(self, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
        """The attributes as class indices (N, 5), in ``ATTRIBUTES``' order."""
        self.eval()
        out = []
        for chunk in x.split(batch):
            logits = self(chunk.to(next(self.parameters()).device))
            out.append(torch.stack([logits[k].argmax(1) for k in ATTRIBUTES], 1).cpu())
        return torch.cat(out)


def accuracy(reader: AttributeReader, images: torch.Tensor, attrs: torch.Tensor) -> dict[str, float]:
    """The fraction of images whose attribute the reader reads as ``attrs`` says, per attribute, and "all five"."""
    got = reader.read(images)
    right = got.eq(attrs)
    return {**{k: right[:, i].float().mean().item() for i, k in enumerate(ATTRIBUTES)},
            "all five": right.all(1).float().mean().item()}


def train_reader(reader: AttributeReader, images: torch.Tensor, attrs: torch.Tensor, epochs: int = 5,
                 batch_size: int = 128, lr: float = 2e-3, seed: int = 0, device="cpu") -> list[float]:
    """Adam on the sum of the five cross-entropies; returns the loss of each step."""
    g = torch.Generator().manual_seed(seed)
    reader.to(device).train()
    opt = torch.optim.Adam(reader.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=g).split(batch_size):
            logits = reader(images[idx].to(device))
            target = attrs[idx].to(device)
            loss = sum(torch.nn.functional.cross_entropy(logits[k], target[:, i]) for i, k in enumerate(ATTRIBUTES))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    reader.eval()
    return losses
