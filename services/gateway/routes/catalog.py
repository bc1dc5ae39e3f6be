"""The catalog: anyone may read it (through the catalog cache), admins write it."""

from fastapi import APIRouter

from sagashop.v1 import inventory_pb2

from ..catalog_cache import LIST, product
from ..deps import AdminUser, Backends, Catalog
from ..problems import responses
from ..schemas import Product, ProductIn, ProductList, SkuPath
from . import READ_WITHIN

router = APIRouter(tags=["catalog"])


def product_out(p: inventory_pb2.Product) -> Product:
    return Product(sku=p.sku, name=p.name, price_cents=p.price_cents, currency=p.currency, available=p.available)


@router.get("/products")
async def list_products(b: Backends, cache: Catalog) -> ProductList:
    async def load() -> str:
        found = await b.inventory.call(b.inventory.stub.ListProducts, inventory_pb2.ListProductsRequest(),
                                       within=READ_WITHIN)
        return ProductList(items=[product_out(p) for p in found.items]).model_dump_json()

    return ProductList.model_validate_json(await cache.get(LIST, load))


@router.get("/products/{sku}", responses=responses(404))
async def get_product(sku: SkuPath, b: Backends, cache: Catalog) -> Product:
    async def load() -> str:  # an unknown SKU raises NotFound: nothing is kept
        found = await b.inventory.call(b.inventory.stub.GetProduct, inventory_pb2.GetProductRequest(sku=sku),
                                       within=READ_WITHIN)
        return product_out(found).model_dump_json()

    return Product.model_validate_json(await cache.get(product(sku), load))


@router.put("/admin/products/{sku}", responses=responses(401, 403))
async def put_product(sku: SkuPath, body: ProductIn, admin: AdminUser, b: Backends, cache: Catalog) -> Product:
    product = inventory_pb2.Product(sku=sku, **body.model_dump())
    try:
        saved = await b.inventory.call(b.inventory.stub.UpsertProduct, inventory_pb2.UpsertProductRequest(
            product=product), within=READ_WITHIN)  # an absolute upsert: safe to repeat
    finally:  # even a failed call may have written it
        await cache.invalidate([sku], "write")
    return product_out(saved)
