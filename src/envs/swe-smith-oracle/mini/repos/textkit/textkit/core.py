"""Small text helpers."""
import re

SMALL_WORDS = ("a", "an", "and", "in", "of", "or", "the")


def slugify(text, sep="-"):
    """Lower-case words of letters and digits joined by `sep`."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return sep.join(words)


def title_case(text, small_words=SMALL_WORDS):
    """Capitalise each word except small words; the first word is always capitalised."""
    result = []
    for index, word in enumerate(text.split()):
        if index > 0 and word.lower() in small_words:
            result.append(word.lower())
        else:
            result.append(word[:1].upper() + word[1:].lower())
    return " ".join(result)


def wrap_words(text, width):
    """Greedy word wrap: lines of at most `width` characters (a longer word gets its own line)."""
    if width < 1:
        raise ValueError("width must be positive")
    lines, current = [], ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def count_words(text):
    """Case-insensitive word frequencies."""
    counts = {}
    for word in re.findall(r"[a-z']+", text.lower()):
        counts[word] = counts.get(word, 0) + 1
    return counts
