"""Composition root of the gateway: the app under uvicorn, which drains on SIGTERM."""

import logging
import secrets

import uvicorn

from sagashop.kit.settings import Settings

from .app import create_app

log = logging.getLogger(__name__)


async def main(settings: Settings) -> None:
    secret = settings.jwt_secret
    if not secret:
        secret = secrets.token_urlsafe(32)
        log.warning("SAGASHOP_JWT_SECRET is not set: tokens are signed with a key of this process only")
    config = uvicorn.Config(create_app(settings, secret), host=settings.bind, port=settings.gateway_port,
                            log_config=None, access_log=False, timeout_graceful_shutdown=10,
                            forwarded_allow_ips=settings.forwarded_allow_ips,  # whose X-Forwarded-For is believed
                            reset_contextvars=True)  # a request never starts in the one before it (its trace, its id)
    await uvicorn.Server(config).serve()
