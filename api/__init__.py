"""The HTTP shell over the ledger: FastAPI routers, auth dependencies and the one error table."""
