"""Image tokenizers: TiTok-style 1D tokens and a 2D-grid VQ baseline."""
