"""The HTTP front door: thin routers over the enrollment service and the stores."""

from api.main import create_app

__all__ = ["create_app"]
