"""Public routes: reports (filled in by issue 4's work)."""

from fastapi import APIRouter

router = APIRouter(tags=["reports"])
