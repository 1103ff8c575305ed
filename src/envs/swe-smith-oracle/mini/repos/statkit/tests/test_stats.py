import pytest

from statkit import clamp, mean, median, variance


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_mean_empty():
    with pytest.raises(ValueError):
        mean([])


def test_median_odd_unsorted():
    assert median([3, 1, 2]) == 2


def test_median_even_unsorted():
    assert median([4, 1, 3, 2]) == 2.5


def test_median_sorted():
    assert median([1, 2, 3]) == 2


def test_population_variance():
    assert variance([2, 4, 4, 4, 5, 5, 7, 9]) == 4


def test_sample_variance():
    assert variance([1, 2, 3, 4], sample=True) == pytest.approx(5 / 3)


def test_clamp():
    assert [clamp(v, 0, 10) for v in (-5, 5, 15)] == [0, 5, 10]
