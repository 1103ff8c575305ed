"""A stock ledger: quantities and unit prices per SKU."""


class OutOfStock(Exception):
    pass


class Inventory:
    def __init__(self):
        self._items = {}

    def add(self, sku, quantity, unit_price):
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        count, _ = self._items.get(sku, (0, unit_price))
        self._items[sku] = (count + quantity, unit_price)

    def remove(self, sku, quantity):
        count, price = self._items.get(sku, (0, 0))
        if quantity > count:
            raise OutOfStock(sku)
        if quantity == count:
            del self._items[sku]
        else:
            self._items[sku] = (count - quantity, price)

    def quantity(self, sku):
        return self._items.get(sku, (0, 0))[0]

    def total_value(self):
        return round(sum(count * price for count, price in self._items.values()), 2)
