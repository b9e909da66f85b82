"""Image tokenizers: TiTok-style 1D tokens and a 2D-grid VQ baseline.

The registered classes live here and import their torch models only when built, so
listing or resolving tokenizers never pays for importing torch.
"""
from ..registry import register
from .base import ImageTokenizer
from .config import TiTokConfig, VQ2DConfig


@register("titok")
class TiTok(ImageTokenizer):
    """TiTok: an image as a short 1D sequence of discrete tokens (Yu et al. 2024).

    Trained with token drop, any prefix of the sequence decodes (fewer tokens, coarser image).
    """

    Config = TiTokConfig
    variable_length = True

    @property
    def num_tokens(self) -> int:
        return self.config.model.num_tokens

    def build_model(self, perceptual=None):
        from .titok import TiTokModel

        return TiTokModel(self.config.model, perceptual=perceptual)


@register("vq2d")
class VQ2D(ImageTokenizer):
    """A 2D-grid VQ tokenizer (VQGAN-style conv encoder and decoder): the baseline for 1D tokens."""

    Config = VQ2DConfig

    @property
    def num_tokens(self) -> int:
        return self.model.num_tokens

    def build_model(self, perceptual=None):
        from .vq2d import VQ2DModel

        return VQ2DModel(self.config.model, perceptual=perceptual)
