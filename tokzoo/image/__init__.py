"""Image tokenizers: TiTok-style 1D tokens and a 2D-grid VQ baseline."""
from . import titok, vq2d  # noqa: F401  (registers the families)
