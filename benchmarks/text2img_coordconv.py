"""Lesson 08, one factor against benchmarks/records/text2img_first.json: the U-Net input gains two coordinate channels (x, y in
[-1, 1]; CoordConv), everything else the same (seed, data, budget, sampler, reader training)."""
import sys, json, torch
import torch.nn as nn
ARGV = ["bench_text2img.py", "--reader-seconds", "120", "--flow-seconds", "240", "--record", "benchmarks/records/text2img_coordconv.json"]
from genimg_course import text2img as T

class CoordUNet(T.TextUNet):
    def __init__(self, channels=3, width=32, emb_dim=128, text=None, heads=4, attend=T.cross_attention):
        super().__init__(channels, width, emb_dim, text, heads, attend)
        self.conv_in = nn.Conv2d(channels + 2, width, 3, padding=1)
    def forward(self, x, t, tokens):
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device).view(1, 1, 1, w).expand(b, 1, h, w)
        return super().forward(torch.cat([x, xs, ys], 1), t, tokens)

# TextFlow builds its network from text2img.TextUNet at construction time: the experiment swaps the class in
T.TextUNet = CoordUNet
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
if __name__ == "__main__":
    import bench_text2img

    sys.argv = ARGV
    bench_text2img.main()
