from exchange.models import ExchangeModel
from shared.migrations import run_env

run_env(ExchangeModel.metadata)
