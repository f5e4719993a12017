"""Events the exchange publishes on ``exchange.events``."""
