"""Composition root of the gateway: the app under uvicorn, which drains on SIGTERM."""

import logging
import secrets
from types import FrameType

import uvicorn
from fastapi import FastAPI

from sagashop.kit.settings import Settings

from .app import create_app

log = logging.getLogger(__name__)
# how long the requests in flight may take to finish once a signal asks the server to stop; the pod's sidecar stays
# up longer (deploy/k8s/base/gateway.yaml, terminationDrainDuration)
DRAIN_SECONDS = 10


class Server(uvicorn.Server):
    """uvicorn's server, which tells the app it is draining (GET /readyz/self answers 503) as soon as a signal asks
    it to stop, before it closes its listener and lets the requests in flight finish."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.app.state.draining = True
        super().handle_exit(sig, frame)


async def main(settings: Settings) -> None:
    secret = settings.jwt_secret
    if not secret:
        secret = secrets.token_urlsafe(32)
        log.warning("SAGASHOP_JWT_SECRET is not set: tokens are signed with a key of this process only")
    app = create_app(settings, secret)
    config = uvicorn.Config(app, host=settings.bind, port=settings.gateway_port,
                            log_config=None, access_log=False, timeout_graceful_shutdown=DRAIN_SECONDS,
                            forwarded_allow_ips=settings.forwarded_allow_ips,  # whose X-Forwarded-For is believed
                            reset_contextvars=True)  # a request never starts in the one before it (its trace, its id)
    await Server(config, app).serve()
