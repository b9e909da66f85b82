"""Image family configs, importable without torch: the registry and `tokzoo list` need
them, the models only once a tokenizer is built."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import check
from ..training.config import TrainConfig


#: (width, depth, heads) of the encoder and of the decoder; "tiny" is for CPU tests and demos.
SIZES = {"tiny": (128, 2, 4), "S": (512, 8, 8), "B": (768, 12, 12), "L": (1024, 24, 16)}


@dataclass
class QuantizedAutoencoderConfig:
    """Fields every image model shares: quantizer, loss weights, discriminator."""

    image_size: int = 256
    quantizer: Literal["vq", "fsq"] = "vq"
    codebook_size: int = 4096  # vq only; fsq's size is the product of its levels
    codebook_dim: int = 12  # vq only: codes are searched in this (factorised) dimension
    cosine: bool = True  # vq only: l2-normalised codes
    fsq_levels: list[int] = field(default_factory=lambda: [8, 8, 8, 5, 5, 5])
    perceptual_weight: float = 1.1
    quantizer_weight: float = 1.0
    discriminator: bool = True
    discriminator_channels: int = 64
    discriminator_layers: int = 3

    def __post_init__(self):
        check(self.image_size >= 1, "image_size", f"must be positive, got {self.image_size}")
        check(self.codebook_size >= 2, "codebook_size", f"must be at least 2, got {self.codebook_size}")
        check(self.codebook_dim >= 1, "codebook_dim", f"must be positive, got {self.codebook_dim}")
        check(len(self.fsq_levels) > 0 and min(self.fsq_levels) >= 2, "fsq_levels",
              f"must be a non-empty list of levels >= 2, got {self.fsq_levels}")
        check(self.perceptual_weight >= 0, "perceptual_weight", f"must be >= 0, got {self.perceptual_weight}")
        check(self.quantizer_weight >= 0, "quantizer_weight", f"must be >= 0, got {self.quantizer_weight}")
        check(self.discriminator_channels >= 1, "discriminator_channels",
              f"must be positive, got {self.discriminator_channels}")
        check(self.discriminator_layers >= 1, "discriminator_layers", f"must be positive, got {self.discriminator_layers}")


@dataclass
class TiTokModelConfig(QuantizedAutoencoderConfig):
    size: Literal["tiny", "S", "B", "L"] = "S"
    patch_size: int = 16
    num_tokens: int = 32
    token_drop: Literal["none", "uniform", "pow2"] = "none"

    def __post_init__(self):
        super().__post_init__()
        check(self.patch_size >= 1, "patch_size", f"must be positive, got {self.patch_size}")
        check(self.image_size % self.patch_size == 0, "image_size",
              f"must be a multiple of patch_size {self.patch_size}, got {self.image_size}")
        check(self.num_tokens >= 1, "num_tokens", f"must be positive, got {self.num_tokens}")


@dataclass
class VQ2DModelConfig(QuantizedAutoencoderConfig):
    channels: int = 128
    channel_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])  # 4 downsamplings: f16
    num_res_blocks: int = 2
    latent_dim: int = 256

    def __post_init__(self):
        super().__post_init__()
        check(self.channels >= 1, "channels", f"must be positive, got {self.channels}")
        check(len(self.channel_mult) > 0 and min(self.channel_mult) >= 1, "channel_mult",
              f"must be a non-empty list of positive multipliers, got {self.channel_mult}")
        check(self.num_res_blocks >= 1, "num_res_blocks", f"must be positive, got {self.num_res_blocks}")
        check(self.latent_dim >= 1, "latent_dim", f"must be positive, got {self.latent_dim}")
        factor = 2 ** (len(self.channel_mult) - 1)
        check(self.image_size % factor == 0, "image_size",
              f"must be a multiple of the downsampling factor {factor}, got {self.image_size}")


@dataclass
class ImageTrainConfig:
    """Keys every image family adds to its model config."""

    train: TrainConfig = field(default_factory=TrainConfig)
    #: Share of the training images held out for validation and the model card's metrics.
    heldout_share: float = 0.05

    def __post_init__(self) -> None:
        check(0 < self.heldout_share < 1, "heldout_share", "must be in (0, 1)")


@dataclass
class TiTokConfig(ImageTrainConfig):
    model: TiTokModelConfig = field(default_factory=TiTokModelConfig)


@dataclass
class VQ2DConfig(ImageTrainConfig):
    model: VQ2DModelConfig = field(default_factory=VQ2DModelConfig)
