"""Events the ledger publishes on ``ledger.events``."""
