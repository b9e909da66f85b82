"""The 2D-grid baseline: a VQGAN-style convolutional autoencoder, one code per grid cell.

Encoder: a 3x3 convolution, then one stage per entry of `channel_mult` (`num_res_blocks`
residual blocks at `channels * mult` channels), every stage but the last followed by a
stride-2 convolution; so an image of side S becomes an (S / 2^(stages-1))^2 grid of
`latent_dim` vectors. Each grid vector is quantized independently (the same quantizer
choices as TiTok) and the codes are the grid read row by row, [B, h * w]. The decoder
mirrors the encoder with nearest-neighbour upsampling.

Against TiTok this fixes the token count to the grid and ties each token to a place, the
layout that 1D tokenizers drop; it is what TiTok's token counts are measured against.
VQGAN's self-attention at the lowest resolution is left out to keep the baseline light.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tokzoo.image.config import VQ2DModelConfig
from tokzoo.image.discriminator import group_norm
from tokzoo.image.titok import QuantizedAutoencoder


class ResBlock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.net = nn.Sequential(
            group_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            group_norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        return self.skip(x) + self.net(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def stage(c_in, c_out, num_res_blocks):
    return [ResBlock(c_in if i == 0 else c_out, c_out) for i in range(num_res_blocks)]


class Encoder(nn.Module):
    def __init__(self, channels, channel_mult, num_res_blocks, latent_dim):
        super().__init__()
        widths = [channels * m for m in channel_mult]
        layers = [nn.Conv2d(3, channels, 3, padding=1)]
        c_in = channels
        for i, c_out in enumerate(widths):
            layers += stage(c_in, c_out, num_res_blocks)
            if i < len(widths) - 1:
                layers.append(nn.Conv2d(c_out, c_out, 3, stride=2, padding=1))
            c_in = c_out
        layers += [ResBlock(c_in, c_in), group_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, latent_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, images):
        return self.net(images)


class Decoder(nn.Module):
    def __init__(self, channels, channel_mult, num_res_blocks, latent_dim):
        super().__init__()
        widths = [channels * m for m in reversed(channel_mult)]
        c_in = widths[0]
        layers = [nn.Conv2d(latent_dim, c_in, 3, padding=1), ResBlock(c_in, c_in)]
        for i, c_out in enumerate(widths):
            layers += stage(c_in, c_out, num_res_blocks)
            if i < len(widths) - 1:
                layers.append(Upsample(c_out))
            c_in = c_out
        layers += [group_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, latents):
        return self.net(latents)


class VQ2DModel(QuantizedAutoencoder):
    """Conv encoder -> one code per grid cell -> conv decoder."""

    def __init__(self, config=None, perceptual=None):
        config = config or VQ2DModelConfig()
        super().__init__(config, dim=config.latent_dim, perceptual=perceptual)
        args = (config.channels, config.channel_mult, config.num_res_blocks, config.latent_dim)
        self.encoder = Encoder(*args)
        self.decoder = Decoder(*args)
        self.grid = config.image_size // 2 ** (len(config.channel_mult) - 1)

    @property
    def num_tokens(self):
        return self.grid**2

    def forward(self, images):
        latents = self.encoder(images)
        quantized = self.quantizer(rearrange(latents, "b c h w -> b (h w) c"))
        grid = rearrange(quantized.quantized, "b (h w) c -> b c h w", h=latents.shape[2])
        return self.decoder(grid), quantized, {}

    @torch.no_grad()
    def encode(self, images):
        """Images [B, 3, H, W] in [0, 1] -> codes LongTensor [B, h * w], row by row (call in eval mode)."""
        return self.quantizer(rearrange(self.encoder(images), "b c h w -> b (h w) c")).codes

    @torch.no_grad()
    def decode(self, codes):
        """Codes [B, h * w] -> images [B, 3, H, W] in [0, 1]."""
        if codes.ndim != 2 or codes.shape[1] != self.num_tokens:
            raise ValueError(f"codes must have shape [B, {self.num_tokens}], got {tuple(codes.shape)}")
        grid = rearrange(self.quantizer.decode_codes(codes), "b (h w) c -> b c h w", h=self.grid)
        return self.decoder(grid).clamp(0, 1)

