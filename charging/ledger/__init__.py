"""The ledger: exactly-once money over a BalanceStore and the Journal (see core.py)."""

from charging.ledger.core import Ledger, LowBalance, RecoveryReport

__all__ = ["Ledger", "LowBalance", "RecoveryReport"]
