"""`sagashop`: up | serve NAME | demo."""

import asyncio
import importlib
from enum import Enum

import typer

from sagashop.kit.logs import configure
from sagashop.kit.settings import PARTS, Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Run and try the sagashop microservices.")
PartName = Enum("PartName", {p: p for p in PARTS}, type=str)  # type: ignore[misc]


@app.command()
def up() -> None:
    """Start the whole shop here, seed the demo catalog and the admin, and stream every part's logs."""
    from .up import run

    asyncio.run(run(Settings()))


@app.command()
def serve(name: PartName) -> None:  # type: ignore[valid-type]
    """Run one part in the foreground (the container entrypoint)."""
    settings = Settings()
    configure(name.value, settings.log_level)
    main = importlib.import_module(f"services.{name.value}.main").main
    asyncio.run(main(settings))


@app.command()
def demo(url: str = typer.Option(None, help="gateway URL; default: this machine's gateway port")) -> None:
    """Against a running shop: place orders that show the happy path and each compensation path."""
    from .demo import run

    asyncio.run(run(url or f"http://127.0.0.1:{Settings().gateway_port}"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
