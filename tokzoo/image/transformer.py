"""Shared ViT blocks: a stack of pre-norm residual blocks (attention, then an MLP).

Pre-norm (LayerNorm inside each residual branch, one final LayerNorm after the stack)
keeps the residual stream an identity path, which is what lets deep stacks (TiTok-L has
24 blocks) train without warmup tricks. Linear weights start as timm's ViT does
(truncated normal, std 0.02, zero bias): small branches, so each block starts near the
identity. Attention is PyTorch's
`scaled_dot_product_attention`, which picks a fused flash / memory-efficient kernel
where one exists.
"""

import torch.nn.functional as F
from einops import rearrange
from torch import nn


def init_linear(module):
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)


class Attention(nn.Module):
    """Multi-head self-attention over all tokens (no mask: every token sees every token)."""

    def __init__(self, width, heads):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class MLP(nn.Module):
    def __init__(self, width, mlp_ratio=4.0):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    def __init__(self, width, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """`depth` pre-norm blocks and a final LayerNorm: [B, N, width] -> [B, N, width]."""

    def __init__(self, width, depth, heads, mlp_ratio=4.0):
        super().__init__()
        self.blocks = nn.ModuleList([Block(width, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.apply(init_linear)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
