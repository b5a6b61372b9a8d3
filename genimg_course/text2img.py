"""Lesson 08's model: flow matching conditioned on a caption through cross-attention (text to image, in miniature).

Three pieces, each small enough to read:

* ``TextEncoder``: the caption's tokens (``captions.tokenize``) → one vector per token. A word embedding plus a
  learned position embedding, then a small Transformer encoder (``kind="transformer"``), so that each token's
  vector can depend on its neighbours ("red" before "square" against "red" in "on a red background"); or, for
  comparison, a bag of words (``kind="bag"``: the embeddings alone, no positions, no mixing), which cannot tell
  "a red square on a blue background" from "a blue square on a red background".
* ``cross_attention``: the step by which the image looks at the words. Each image position asks a query q; each
  token offers a key k and a value v; the position receives the values averaged with weights
  softmax(q · k / √d) over the caption's tokens (padding excluded). ``CrossAttention`` wraps it in a residual block
  inside the U-Net, at the 16 × 16 and 8 × 8 resolutions, and keeps the last weights for the attention maps.
* ``TextFlow``: lesson 06's rectified flow (velocity target, logit-normal times, Heun sampling) on ``TextUNet``,
  with classifier-free guidance where the unconditional model is the empty caption (``captions.EMPTY``) and, when
  given, a negative caption takes its place.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genimg_course import captions, diffusion
from genimg_course.unet import ResBlock, time_embedding


# ----------------------------------------------------------------------------- the text encoder
class TextEncoder(nn.Module):
    """Tokens (B, L) → (token vectors (B, L, d), padding mask (B, L): True where a token is real, pooled (B, d):
    the mean of the real tokens' vectors)."""

    def __init__(self, vocab_size: int = len(captions.VOCAB), dim: int = 64, layers: int = 2, heads: int = 4,
                 max_len: int = 24, kind: str = "transformer"):
        super().__init__()
        if kind not in ("transformer", "bag"):
            raise ValueError(f"kind {kind!r} is not one of: transformer, bag")
        self.kind, self.dim, self.max_len = kind, dim, max_len
        self.words = nn.Embedding(vocab_size, dim, padding_idx=captions.PAD)
        self.positions = nn.Embedding(max_len, dim) if kind == "transformer" else None
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True),
            layers, enable_nested_tensor=False) if kind == "transformer" else None
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"a caption of {tokens.shape[1]} tokens is longer than the encoder's {self.max_len}")
        mask = tokens != captions.PAD  # (B, L)
        h = self.words(tokens)  # (B, L, d)
        if self.encoder is not None:
            h = h + self.positions(torch.arange(tokens.shape[1], device=tokens.device))[None]
            h = self.encoder(h, src_key_padding_mask=~mask)  # each token sees every real token
        h = self.norm(h)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return h, mask, pooled


# ----------------------------------------------------------------------------- cross-attention
def cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention of queries (B, N, d) over keys (B, L, d) and values (B, L, e).

    weights = softmax_j(q_i · k_j / √d) over the tokens j where ``mask`` (B, L) is True (padding gets weight 0);
    returns (weights @ v (B, N, e), weights (B, N, L))."""
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (B, N, L)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


class CrossAttention(nn.Module):
    """A residual block in which each position of a feature map (B, C, H, W) attends to the caption's tokens:
    x + W_o · cross_attention(W_q · norm(x), W_k · text, W_v · text). ``heads`` heads of C / heads channels each;
    the last attention weights (B, heads, H·W, L) are kept in ``self.weights`` for the maps."""

    def __init__(self, channels: int, text_dim: int, heads: int = 4, attend=cross_attention):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads, self.attend = heads, attend
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Linear(text_dim, channels)
        self.v = nn.Linear(text_dim, channels)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)  # starts as the identity: the U-Net first learns as if unconditional
        nn.init.zeros_(self.out.bias)
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.heads
        split = lambda t: t.reshape(b, -1, n, c // n).transpose(1, 2).reshape(b * n, -1, c // n)  # (B·n, ·, c/n)
        q = split(self.q(self.norm(x)).flatten(2).transpose(1, 2))  # (B·n, H·W, c/n)
        k, v = split(self.k(text)), split(self.v(text))  # (B·n, L, c/n)
        out, weights = self.attend(q, k, v, mask.repeat_interleave(n, 0))
        self.weights = weights.detach().reshape(b, n, h * w, -1)
        out = out.reshape(b, n, h * w, c // n).transpose(1, 2).reshape(b, h * w, c).transpose(1, 2)
        return x + self.out(out.reshape(b, c, h, w))


# ----------------------------------------------------------------------------- the U-Net
class TextUNet(nn.Module):
    """Lesson 06's U-Net (three resolutions, one residual block each) with cross-attention to the caption after
    the blocks at half and quarter resolution, and the caption's pooled vector added to the time embedding."""

    def __init__(self, channels: int = 3, width: int = 32, emb_dim: int = 128, text: TextEncoder | None = None,
                 heads: int = 4, attend=cross_attention):
        super().__init__()
        c = width
        self.text = text or TextEncoder()
        d = self.text.dim
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.pooled = nn.Linear(d, emb_dim)
        self.conv_in = nn.Conv2d(channels, c, 3, padding=1)
        self.down1 = ResBlock(c, c, emb_dim)
        self.pool1 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.down2 = ResBlock(c, 2 * c, emb_dim)
        self.attn_down2 = CrossAttention(2 * c, d, heads, attend)
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.middle = ResBlock(2 * c, 2 * c, emb_dim)
        self.attn_middle = CrossAttention(2 * c, d, heads, attend)
        self.up2 = ResBlock(4 * c, 2 * c, emb_dim)
        self.attn_up2 = CrossAttention(2 * c, d, heads, attend)
        self.up1 = ResBlock(3 * c, c, emb_dim)
        self.norm_out = nn.GroupNorm(min(8, c), c)
        self.conv_out = nn.Conv2d(c, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def attention_layers(self) -> dict[str, CrossAttention]:
        return {"down (1/2)": self.attn_down2, "middle (1/4)": self.attn_middle, "up (1/2)": self.attn_up2}

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        text, mask, pooled = self.text(tokens)
        emb = self.time_mlp(time_embedding(t, self.emb_dim)) + self.pooled(pooled)  # (B, emb_dim)
        skip1 = self.down1(self.conv_in(x), emb)
        skip2 = self.attn_down2(self.down2(self.pool1(skip1), emb), text, mask)
        h = self.attn_middle(self.middle(self.pool2(skip2), emb), text, mask)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.attn_up2(self.up2(torch.cat([h, skip2], dim=1), emb), text, mask)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up1(torch.cat([h, skip1], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


# ----------------------------------------------------------------------------- the model
@dataclass
class TextFlowConfig:
    image_shape: tuple[int, int, int] = (3, 32, 32)
    width: int = 32
    text_dim: int = 64
    text_layers: int = 2
    text_kind: str = "transformer"
    p_uncond: float = 0.1  # how often training replaces the caption by the empty one (for guidance)
    guidance: float = 3.0
    steps: int = 25  # Heun steps: 2 · 25 − 1 = 49 network evaluations per sample, 98 with guidance
    max_len: int = 24


class TextFlow(nn.Module):
    """Rectified flow x_t = (1 − t) x_0 + t ε with the velocity ε − x_0 as target (lesson 06), conditioned on a
    caption."""

    def __init__(self, config: TextFlowConfig | None = None):
        super().__init__()
        self.config = config or TextFlowConfig()
        cfg = self.config
        encoder = TextEncoder(dim=cfg.text_dim, layers=cfg.text_layers, kind=cfg.text_kind, max_len=cfg.max_len)
        self.net = TextUNet(cfg.image_shape[0], cfg.width, text=encoder)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tokens(self, prompts) -> torch.Tensor:
        """Prompts (str or list of str) → tokens on the model's device; an unknown word is a one-line ValueError."""
        return captions.tokenize(prompts, None).to(self.device)

    def loss(self, x0: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = len(x0)
        t = diffusion.flow_times(n, "logit-normal", generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        drop = torch.rand(n, generator=generator).to(x0.device) < self.config.p_uncond
        empty = torch.zeros_like(tokens)
        empty[:, 0] = captions.EMPTY
        tokens = torch.where(drop[:, None], empty, tokens)
        x_t = diffusion.flow_interpolate(x0, noise, t)
        return F.mse_loss(self.net(x_t, t, tokens), noise - x0)

    @torch.no_grad()
    def velocity(self, x, t, cond, uncond, w: float):
        """The guided velocity at (x, t): v(uncond) + w (v(cond) − v(uncond)) (w = 1: the conditional model)."""
        tt = torch.full((len(x),), float(t), device=x.device)
        if w == 1.0:
            return self.net(x, tt, cond)
        both = self.net(torch.cat([x, x]), torch.cat([tt, tt]), _pad_cat(cond, uncond))
        v_c, v_u = both.chunk(2)
        return diffusion.guided(v_c, v_u, w)

    @torch.no_grad()
    def sample(self, prompts, generator: torch.Generator | None = None, steps: int | None = None,
               guidance: float | None = None, negative: str = "", sampler: str = "heun") -> torch.Tensor:
        """Images (N, C, H, W) in about [−1, 1] for N prompts: Heun (or Euler) from t = 1 to 0 in ``steps``."""
        steps = steps or self.config.steps
        w = self.config.guidance if guidance is None else guidance
        if sampler not in ("heun", "euler"):
            raise ValueError(f"sampler {sampler!r} is not one of: heun, euler")
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        cond = self.tokens(prompts)
        uncond = self.tokens([negative] * len(prompts))
        was = self.training
        self.eval()
        x = torch.randn((len(prompts), *self.config.image_shape), generator=generator).to(self.device)
        ts = torch.linspace(1.0, 0.0, steps + 1).tolist()
        for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
            v = self.velocity(x, t, cond, uncond, w)
            x_euler = diffusion.euler_step(x, v, t, t_next)
            if sampler == "heun" and t_next > 0:  # the trapezoid: average the slopes at both ends
                v_next = self.velocity(x_euler, t_next, cond, uncond, w)
                x = diffusion.euler_step(x, (v + v_next) / 2, t, t_next)
            else:
                x = x_euler
        self.train(was)
        return x


def _pad_cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two token batches (B, La), (B, Lb) stacked into one (2B, max(La, Lb)), padded with PAD."""
    width = max(a.shape[1], b.shape[1])
    pad = lambda t: F.pad(t, (0, width - t.shape[1]), value=captions.PAD)
    return torch.cat([pad(a), pad(b)])


def train_text_flow(model: TextFlow, images: torch.Tensor, texts: list[str], epochs: int = 10**6,
                    batch_size: int = 64, lr: float = 1e-3, seed: int = 0, device="cpu",
                    max_seconds: float | None = None, ema_decay: float = 0.999) -> dict:
    """Adam with an EMA of the weights (the EMA is what ``model`` holds at the end); stops after ``epochs`` or
    ``max_seconds``. images (N, C, H, W) in [−1, 1], texts: N captions. Returns {"loss": per step, "seconds"}."""
    import copy

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.to(device).train()
    tokens = captions.tokenize(texts)
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses, start = [], time.perf_counter()
    out_of_time = lambda: max_seconds is not None and time.perf_counter() - start > max_seconds
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=g).split(batch_size):
            loss = model.loss(images[idx].to(device), tokens[idx].to(device), g)
            opt.zero_grad()
            loss.backward()
            opt.step()
            diffusion.ema_update(ema, model, min(ema_decay, (1 + len(losses)) / (10 + len(losses))))
            losses.append(loss.item())
            if out_of_time():
                break
        if out_of_time():
            break
    model.load_state_dict(ema.state_dict())
    model.eval()
    return {"loss": losses, "seconds": time.perf_counter() - start, "config": asdict(model.config)}
