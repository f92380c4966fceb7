"""Entry point for ASGI servers: ``uvicorn --factory api.main:create_app_from_env``."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from ledger.settings import load_settings


def create_app_from_env() -> FastAPI:
    return create_app(load_settings())
