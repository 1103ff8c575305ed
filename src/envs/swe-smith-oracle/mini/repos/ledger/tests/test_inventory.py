import pytest

from ledger import Inventory, OutOfStock


def test_add_and_quantity():
    inventory = Inventory()
    inventory.add("apple", 3, 0.5)
    assert inventory.quantity("apple") == 3


def test_add_same_sku_accumulates():
    inventory = Inventory()
    inventory.add("apple", 3, 0.5)
    inventory.add("apple", 2, 0.5)
    assert inventory.quantity("apple") == 5


def test_remove_partial():
    inventory = Inventory()
    inventory.add("pear", 4, 1.0)
    inventory.remove("pear", 1)
    assert inventory.quantity("pear") == 3


def test_remove_more_than_stock_raises():
    inventory = Inventory()
    inventory.add("pear", 2, 1.0)
    with pytest.raises(OutOfStock):
        inventory.remove("pear", 3)
    assert inventory.quantity("pear") == 2


def test_total_value():
    inventory = Inventory()
    inventory.add("apple", 3, 0.5)
    inventory.add("pear", 2, 1.25)
    assert inventory.total_value() == 4.0


def test_add_rejects_non_positive():
    with pytest.raises(ValueError):
        Inventory().add("apple", 0, 1.0)
