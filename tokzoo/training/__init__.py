"""The one training loop for every neural tokenizer (Lightning)."""
