"""One checkout through the Istio ingress gateway of the kind cluster: the last step of deploy/kind/up.sh.

  smoke.py STACK [--url http://127.0.0.1:8080]

STACK is the manifests up.sh applied (tools/kind/stack.py render), where the admin's email and password are.
Waits until /readyz answers 200, signs in as the admin, stocks the product SMOKE, signs a customer up and in, lists
the products and places an order with `Prefer: wait=10`. Exit 1, with the shop's answer, unless it is APPROVED.
"""

import argparse
import asyncio
import base64
import sys
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from tools.shopclient import ShopClient, ShopError, order_body

READY_WITHIN = 180  # seconds: the sidecars learn the routes a little after the rollouts end
SKU = "SMOKE"


def admin_of(stack: str) -> tuple[str, str]:
    """The admin's email (ConfigMap sagashop-config) and password (Secret sagashop-secrets) of the stack."""
    objs: list[dict[str, Any]] = [o for o in YAML(typ="safe").load_all(stack) if o]
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("sagashop-config"))
    secret = next(o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"].startswith("sagashop-secrets"))
    return config["data"]["SAGASHOP_ADMIN_EMAIL"], base64.b64decode(secret["data"]["admin-password"]).decode()


async def wait_ready(shop: ShopClient, url: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_WITHIN
    while not await shop.ready():
        if loop.time() > deadline:
            try:
                reply = await shop.http.get("/readyz")
                answer = f"{reply.status_code}: {reply.text[:300]}"
            except httpx.HTTPError as e:
                answer = f"no answer ({e!r})"
            raise SystemExit(f"smoke: {url}/readyz is not 200 after {READY_WITHIN} s; last answer {answer}")
        await asyncio.sleep(2)


async def checkout(url: str, email: str, password: str) -> None:
    async with ShopClient(url, outlast=30) as shop:
        await wait_ready(shop, url)
        try:
            await shop.sign_in_admin(email, password)
            await shop.put_product(SKU, available=1000, name="Smoke test")
            customer = await shop.sign_up("Smoke")
            if SKU not in {p["sku"] for p in await shop.products()}:
                raise SystemExit(f"smoke: GET /v1/products does not list {SKU}")
            reply = await shop.place(customer.headers, order_body({SKU: 1}), wait=10)
        except (ShopError, httpx.HTTPError) as e:
            raise SystemExit(f"smoke: {e}") from None
        order = reply.json() if reply.headers.get("content-type", "").endswith("json") else {}
        if reply.status_code != 201 or order.get("status") != "APPROVED":
            raise SystemExit(f"smoke: POST /v1/orders answered {reply.status_code}: {reply.text[:500]}")
        print(f"smoke: order {order['id']} APPROVED ({order['total_cents']} cents {order['currency']}) via {url}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.kind.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("stack", type=Path, help="the manifests up.sh applied")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the ingress gateway")
    args = parser.parse_args()
    try:
        email, password = admin_of(args.stack.read_text())
    except (OSError, StopIteration, KeyError, YAMLError) as e:
        sys.exit(f"smoke: no admin email and password in {args.stack} ({e!r})")
    asyncio.run(checkout(args.url.rstrip("/"), email, password))


if __name__ == "__main__":
    main()
