import pytest

from textkit import count_words, slugify, title_case, wrap_words


def test_slugify_basic():
    assert slugify("Hello, World!") == "hello-world"


def test_slugify_custom_separator():
    assert slugify("Rollouts on warm sandboxes", sep="_") == "rollouts_on_warm_sandboxes"


def test_slugify_empty():
    assert slugify("!!!") == ""


def test_title_case_small_words():
    assert title_case("the lord of the rings") == "The Lord of the Rings"


def test_title_case_single_word():
    assert title_case("hELLO") == "Hello"


def test_wrap_words_exact_width():
    assert wrap_words("abc def ghi", 7) == ["abc def", "ghi"]


def test_wrap_words_long_word():
    assert wrap_words("a extraordinarily b", 5) == ["a", "extraordinarily", "b"]


def test_wrap_words_rejects_zero_width():
    with pytest.raises(ValueError):
        wrap_words("x", 0)


def test_count_words():
    assert count_words("The cat and the hat") == {"the": 2, "cat": 1, "and": 1, "hat": 1}
