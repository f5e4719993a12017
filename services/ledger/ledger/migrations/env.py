from ledger.models import LedgerModel
from shared.migrations import run_env

run_env(LedgerModel.metadata)
