"""Descriptive statistics without dependencies."""


def mean(values):
    values = list(values)
    if not values:
        raise ValueError("mean of empty data")
    return sum(values) / len(values)


def median(values):
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of empty data")
    middle = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def variance(values, sample=False):
    """Population variance, or the sample variance (n - 1 denominator) when `sample` is true."""
    values = list(values)
    n = len(values)
    if n < (2 if sample else 1):
        raise ValueError("not enough data")
    centre = mean(values)
    return sum((v - centre) ** 2 for v in values) / (n - 1 if sample else n)


def clamp(value, low, high):
    if low > high:
        raise ValueError("low must not exceed high")
    return max(low, min(value, high))
