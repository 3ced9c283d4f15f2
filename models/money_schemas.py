"""Money as the API shows it: a decimal string, the integer minor units and the currency."""

from __future__ import annotations

from pydantic import BaseModel

from models.currency import format_amount


class Money(BaseModel):
    """An amount: `amount` is a decimal string in major units, `amount_minor` is exact."""

    amount: str
    amount_minor: int
    currency: str

    @classmethod
    def of(cls, minor: int, currency: str) -> Money:
        """Build from integer minor units."""
        return cls(amount=format_amount(minor, currency), amount_minor=minor, currency=currency)
