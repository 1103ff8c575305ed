from .csvio import parse_line
from .inventory import Inventory, OutOfStock

__all__ = ["Inventory", "OutOfStock", "parse_line"]
