"""Routes of the service (to be filled in: see alphatrade_lab.service.app)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
