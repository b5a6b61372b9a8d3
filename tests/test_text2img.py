"""Lesson 08's model pieces (issue 34): the text encoder, cross-attention, the text-conditioned U-Net and flow."""

import pytest
import torch
import torch.nn.functional as F

from genimg_course import captions as C
from genimg_course import text2img as T


def test_cross_attention_is_scaled_dot_product_attention_with_padding_masked():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 5, 8, generator=g), torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 6, generator=g))
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    out, w = T.cross_attention(q, k, v, mask)
    oracle = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, :])  # PyTorch's own
    assert torch.allclose(out, oracle, atol=1e-6)
    assert torch.allclose(w.sum(-1), torch.ones(2, 5)) and w[0, :, 3].eq(0).all() and w[1, :, 1:].eq(0).all()
    # padding changes nothing: the same caption padded longer attends the same
    out_short, _ = T.cross_attention(q[1:], k[1:, :1], v[1:, :1])
    assert torch.allclose(out[1:], out_short, atol=1e-6)


def test_the_bag_of_words_cannot_tell_word_order_and_the_transformer_can():
    torch.manual_seed(0)
    a = C.tokenize(["a red square on a blue background", "a blue square on a red background"])
    bag = T.TextEncoder(kind="bag").eval()
    _, _, pooled = bag(a)
    assert torch.allclose(pooled[0], pooled[1], atol=1e-6)
    enc = T.TextEncoder(kind="transformer").eval()
    _, _, pooled = enc(a)
    assert (pooled[0] - pooled[1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="kind 'lstm' is not one of: transformer, bag"):
        T.TextEncoder(kind="lstm")


def test_padding_does_not_change_the_encoding():
    enc = T.TextEncoder().eval()
    h1, m1, p1 = enc(C.tokenize(["a red star"]))
    h2, m2, p2 = enc(C.tokenize(["a red star", "on a blue background, a big green ring in the middle"])[:1])
    assert torch.allclose(p1, p2, atol=1e-5) and torch.allclose(h1, h2[:, :3], atol=1e-5)
    assert m2[0].tolist() == [True] * 3 + [False] * (m2.shape[1] - 3)


def test_the_unet_and_the_attention_maps_have_the_right_shapes():
    torch.manual_seed(0)
    net = T.TextUNet(width=16)
    x, t = torch.randn(2, 3, 32, 32), torch.rand(2)
    tokens = C.tokenize(["a red star in the top left", "a ring"])
    assert net(x, t, tokens).shape == (2, 3, 32, 32)
    maps = {k: layer.weights.shape for k, layer in net.attention_layers().items()}
    assert maps == {"down (1/2)": (2, 4, 256, 7), "middle (1/4)": (2, 4, 64, 7), "up (1/2)": (2, 4, 256, 7)}
    assert net.attn_middle.weights[1, :, :, 2:].eq(0).all()  # "a ring": two tokens, the rest padding


def test_the_caption_reaches_the_output_once_the_zero_initialised_layers_move():
    torch.manual_seed(0)
    net = T.TextUNet(width=16)
    for p in net.parameters():  # as after some training: no layer is zero
        p.data.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(1, 3, 32, 32), torch.rand(1)
    red, blue = C.tokenize(["a red star"]), C.tokenize(["a blue star"])
    assert (net(x, t, red) - net(x, t, blue)).abs().max() > 1e-4


def test_guidance_one_is_the_conditional_model_and_sampling_is_deterministic():
    torch.manual_seed(0)
    model = T.TextFlow(T.TextFlowConfig(width=16, steps=2))
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    prompts = ["a large red star in the centre on a blue background"]
    a = model.sample(prompts, torch.Generator().manual_seed(1), guidance=1.0)
    b = model.sample(prompts, torch.Generator().manual_seed(1), guidance=1.0, negative="a blue star")
    assert torch.allclose(a, b)  # w = 1 never evaluates the unconditional (or negative) caption
    c = model.sample(prompts, torch.Generator().manual_seed(1), guidance=3.0)
    d = model.sample(prompts, torch.Generator().manual_seed(1), guidance=3.0, negative="a blue star")
    assert not torch.allclose(a, c) and not torch.allclose(c, d) and a.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown word 'violet'"):
        model.sample(["a violet star"])


def test_training_lowers_the_loss_and_drops_captions_for_guidance():
    torch.manual_seed(0)
    x, _, texts = C.dataset("train", 32, seed=2)
    model = T.TextFlow(T.TextFlowConfig(width=16, p_uncond=0.5))
    history = T.train_text_flow(model, x, texts, epochs=8, batch_size=16, lr=2e-3)
    assert len(history["loss"]) == 16 and sum(history["loss"][-4:]) < sum(history["loss"][:4])
    seen = []
    model.net.text.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    model.train()
    model.loss(x[:32], C.tokenize(texts[:32]), torch.Generator().manual_seed(0))
    empty = (seen[0][:, 0] == C.EMPTY) & (seen[0][:, 1:] == C.PAD).all(1)
    assert 5 < empty.sum() < 27  # about half of 32 captions replaced by the empty one
