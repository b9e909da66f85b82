"""A PatchGAN discriminator (pix2pix, as used by VQGAN and TiTok's single-stage recipe).

Strided 4x4 convolutions halve the image `num_layers` times and a last convolution gives
one logit per patch, so the adversarial loss judges local texture (where L2 blurs) and
leaves global layout to the reconstruction and perceptual losses. GroupNorm instead of
BatchNorm: its output does not depend on the batch, so real and fake batches scored
separately, and ranks under DDP, see the same function.
"""

import math

from torch import nn


def group_norm(channels):
    return nn.GroupNorm(math.gcd(32, channels), channels)


class PatchDiscriminator(nn.Module):
    """[B, 3, H, W] in [0, 1] -> logits [B, 1, H / 2^num_layers - 1, W / 2^num_layers - 1]."""

    def __init__(self, channels=64, num_layers=3):
        super().__init__()
        layers = [nn.Conv2d(3, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for i in range(1, num_layers):
            c_in, c_out = channels * 2 ** (i - 1), channels * 2**i
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), group_norm(c_out), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(channels * 2 ** (num_layers - 1), 1, 4, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, images):
        return self.net(images * 2 - 1)
