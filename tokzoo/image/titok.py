"""TiTok: an image as a 1D sequence of K tokens (Yu et al. 2024, "An Image is Worth 32 Tokens").

Encoder: the image is cut into p x p patches, each embedded to `width` with a learned
position embedding; K learned latent tokens are appended, a ViT runs over all of them,
and only the K latent outputs are kept. They are quantized (by default VQ with 4096 codes
of dimension 12, l2-normalised, as TiTok; FSQ as an option), so the codes are [B, K] with
no 2D layout: a token can describe whatever part of the image it finds most useful.

Decoder: the K quantized tokens (projected back to `width`, with position embeddings)
are appended to one learned query token per patch position; a ViT runs over both and each
query's output is projected to its p x p x 3 pixels. This is the single-stage recipe of
TA-TiTok (straight to pixels, trained with L2 + perceptual + GAN), not the original
two-stage one that first regresses MaskGIT proxy codes.

Variable length (One-D-Piece's tail token drop, FlexTok's nested dropout): in training
each example keeps a random number k of its tokens (`token_drop`: "uniform" over 1..K,
or "pow2", a power of two up to K) and the tail positions >= k are replaced by a learned
drop token before decoding. The first tokens then learn to carry the coarse content, so
`encode(images, num_tokens=k)` and `decode(any prefix)` trade length for detail.

Output range: the pixel head is linear and the L2 loss is taken on its raw output, so
every pixel keeps a gradient (a clamp zeroes it outside [0, 1]; a sigmoid needs infinite
logits for black or white and trains slowly near them). What leaves the model (`decode`,
and `losses()["recon"]` for the perceptual and adversarial terms) is clamped to [0, 1].

This file also holds what both image models share (`QuantizedAutoencoder`: the quantizer
choice, the loss, the discriminator); vq2d.py builds the 2D-grid baseline on it.
"""

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tokzoo import quantize
from tokzoo.image.config import SIZES, TiTokModelConfig
from tokzoo.image.discriminator import PatchDiscriminator
from tokzoo.image.transformer import Transformer, init_linear

class QuantizedAutoencoder(nn.Module):
    """Encoder -> quantizer -> decoder, with the generator loss the training loop calls.

    A subclass sets `encoder`/`decoder` and implements `forward(images) -> (pixels,
    QuantizerOutput, extra logs)`, `encode` and `decode`.

    The perceptual module is kept out of the module tree (not a submodule): it is frozen
    and pretrained, so it must not enter the state dict (checkpoints, strict loading),
    the EMA, or `train()` (which would let its BatchNorm statistics drift). It follows the
    images' device at each call.
    """

    def __init__(self, config, dim, perceptual=None):
        super().__init__()
        self.config = config
        if config.quantizer == "vq":
            self.quantizer = quantize.create("vq", dim=dim, codebook_size=config.codebook_size,
                                             codebook_dim=config.codebook_dim, cosine=config.cosine)
        else:
            self.quantizer = quantize.create("fsq", dim=dim, levels=config.fsq_levels)
        self.discriminator = (
            PatchDiscriminator(config.discriminator_channels, config.discriminator_layers)
            if config.discriminator else None
        )
        self._perceptual = [perceptual.eval().requires_grad_(False)] if perceptual is not None else []

    def perceptual_loss(self, recon, images):
        perceptual = self._perceptual[0].to(images.device)
        return perceptual(recon, images)

    def losses(self, images, step):
        """The generator loss for the training loop (the adversarial term is the loop's).

        `step` is part of the loop's contract; these models weigh their terms the same at
        every step.
        """
        pixels, quantized, logs = self(images)
        recon = pixels.clamp(0, 1)
        l2 = F.mse_loss(pixels.float(), images.float())
        loss = l2 + self.config.quantizer_weight * quantized.loss
        logs = {"l2": l2, "quantizer": quantized.loss, **quantized.stats, **logs}
        if self._perceptual and self.config.perceptual_weight > 0:
            logs["perceptual"] = self.perceptual_loss(recon, images)
            loss = loss + self.config.perceptual_weight * logs["perceptual"]
        return {"loss": loss, "recon": recon, **{k: v.detach() for k, v in logs.items()}}


class TiTokEncoder(nn.Module):
    """Images [B, 3, H, W] -> K latent vectors [B, K, width].

    The latent tokens are learned parameters, so each is its own position embedding: a
    separate latent position embedding would only be added to a learned constant.
    """

    def __init__(self, image_size, patch_size, num_tokens, width, depth, heads):
        super().__init__()
        scale = width**-0.5
        self.patch_embed = nn.Conv2d(3, width, patch_size, stride=patch_size)
        self.patch_pos = nn.Parameter(torch.randn((image_size // patch_size) ** 2, width) * scale)
        self.latents = nn.Parameter(torch.randn(num_tokens, width) * scale)
        self.transformer = Transformer(width, depth, heads)

    def forward(self, images):
        patches = rearrange(self.patch_embed(images), "b c h w -> b (h w) c") + self.patch_pos
        latents = self.latents.expand(len(images), -1, -1)
        x = self.transformer(torch.cat([patches, latents], dim=1))
        return x[:, -len(self.latents):]


class TiTokDecoder(nn.Module):
    """K token vectors [B, K, width] (positions >= keep dropped) -> pixels [B, 3, H, W].

    One learned query per patch position is the mask token and its grid position
    embedding in one parameter, for the same reason as the encoder's latents.
    """

    def __init__(self, image_size, patch_size, num_tokens, width, depth, heads):
        super().__init__()
        scale = width**-0.5
        self.patch_size, self.grid = patch_size, image_size // patch_size
        self.drop_token = nn.Parameter(torch.randn(width) * scale)
        self.token_pos = nn.Parameter(torch.randn(num_tokens, width) * scale)
        self.queries = nn.Parameter(torch.randn(self.grid**2, width) * scale)
        self.transformer = Transformer(width, depth, heads)
        self.to_pixels = nn.Linear(width, patch_size * patch_size * 3)
        init_linear(self.to_pixels)
        nn.init.constant_(self.to_pixels.bias, 0.5)  # start from mid-grey, not from black

    def forward(self, tokens, keep):
        dropped = torch.arange(tokens.shape[1], device=tokens.device) >= keep[:, None]
        tokens = torch.where(dropped[..., None], self.drop_token.to(tokens.dtype), tokens) + self.token_pos
        queries = self.queries.expand(len(tokens), -1, -1)
        x = self.transformer(torch.cat([queries, tokens], dim=1))[:, : len(self.queries)]
        p = self.patch_size
        return rearrange(self.to_pixels(x), "b (h w) (p q c) -> b c (h p) (w q)", h=self.grid, p=p, q=p)


class TiTokModel(QuantizedAutoencoder):
    """TiTok with a single-stage pixel decoder and optional tail token drop."""

    def __init__(self, config=None, perceptual=None):
        config = config or TiTokModelConfig()
        width, depth, heads = SIZES[config.size]
        super().__init__(config, dim=width, perceptual=perceptual)
        args = (config.image_size, config.patch_size, config.num_tokens, width, depth, heads)
        self.encoder = TiTokEncoder(*args)
        self.decoder = TiTokDecoder(*args)
        self.num_tokens = config.num_tokens

    def keep_lengths(self, batch_size, device):
        """Tokens each example keeps: random in training with token drop, else all K."""
        K = self.num_tokens
        if not self.training or self.config.token_drop == "none":
            return torch.full((batch_size,), K, device=device)
        if self.config.token_drop == "uniform":
            return torch.randint(1, K + 1, (batch_size,), device=device)
        lengths = torch.tensor(sorted({2**i for i in range(K.bit_length()) if 2**i <= K} | {K}), device=device)
        return lengths[torch.randint(len(lengths), (batch_size,), device=device)]

    def forward(self, images):
        quantized = self.quantizer(self.encoder(images))
        keep = self.keep_lengths(len(images), images.device)
        pixels = self.decoder(quantized.quantized, keep)
        return pixels, quantized, {"tokens_kept": keep.float().mean() / self.num_tokens}

    @torch.no_grad()
    def encode(self, images, num_tokens=None):
        """Images [B, 3, H, W] in [0, 1] -> codes LongTensor [B, num_tokens or K].

        Call in eval mode: in training mode the quantizer's forward also updates its codebook.
        """
        k = self.num_tokens if num_tokens is None else num_tokens
        if not 1 <= k <= self.num_tokens:
            raise ValueError(f"num_tokens must be in [1, {self.num_tokens}], got {k}")
        return self.quantizer(self.encoder(images)).codes[:, :k]

    @torch.no_grad()
    def decode(self, codes):
        """Codes [B, k] for any 1 <= k <= K -> images [B, 3, H, W] in [0, 1]."""
        if codes.ndim != 2 or not 1 <= codes.shape[1] <= self.num_tokens:
            raise ValueError(f"codes must have shape [B, k] with 1 <= k <= {self.num_tokens}, got {tuple(codes.shape)}")
        tokens = self.quantizer.decode_codes(codes)
        keep = torch.full((len(codes),), codes.shape[1], device=codes.device)
        tokens = F.pad(tokens, (0, 0, 0, self.num_tokens - codes.shape[1]))
        return self.decoder(tokens, keep).clamp(0, 1)

