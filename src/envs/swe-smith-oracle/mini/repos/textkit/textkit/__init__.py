from .core import count_words, slugify, title_case, wrap_words

__all__ = ["count_words", "slugify", "title_case", "wrap_words"]
