"""Security rejections that cross Temporal (a stable type each) and their problems."""

from __future__ import annotations

from typing import Final

from core.errors import Conflict

ACCOUNT_FROZEN: Final = "AccountFrozen"


class AccountFrozen(Conflict):
    """Outbound payments from the account are frozen (by the customer or a fraud report)."""

    type, title, code = "account-frozen", "Outbound payments are frozen", ACCOUNT_FROZEN
