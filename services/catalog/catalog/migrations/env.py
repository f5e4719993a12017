from catalog.models import CatalogModel
from shared.migrations import run_env

run_env(CatalogModel.metadata)
