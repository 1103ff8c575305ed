from .stats import clamp, mean, median, variance

__all__ = ["clamp", "mean", "median", "variance"]
