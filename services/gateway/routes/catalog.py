"""The catalog: anyone may read it, admins write it."""

from fastapi import APIRouter

from sagashop.v1 import inventory_pb2

from ..deps import AdminUser, Backends
from ..problems import responses
from ..schemas import Product, ProductIn, ProductList, SkuPath
from . import READ_WITHIN

router = APIRouter(tags=["catalog"])


def product_out(p: inventory_pb2.Product) -> Product:
    return Product(sku=p.sku, name=p.name, price_cents=p.price_cents, currency=p.currency, available=p.available)


@router.get("/products")
async def list_products(b: Backends) -> ProductList:
    found = await b.inventory.call(b.inventory.stub.ListProducts, inventory_pb2.ListProductsRequest(),
                                   within=READ_WITHIN)
    return ProductList(items=[product_out(p) for p in found.items])


@router.get("/products/{sku}", responses=responses(404))
async def get_product(sku: SkuPath, b: Backends) -> Product:
    found = await b.inventory.call(b.inventory.stub.GetProduct, inventory_pb2.GetProductRequest(sku=sku),
                                   within=READ_WITHIN)
    return product_out(found)


@router.put("/admin/products/{sku}", responses=responses(401, 403))
async def put_product(sku: SkuPath, body: ProductIn, admin: AdminUser, b: Backends) -> Product:
    product = inventory_pb2.Product(sku=sku, **body.model_dump())
    saved = await b.inventory.call(b.inventory.stub.UpsertProduct, inventory_pb2.UpsertProductRequest(
        product=product), within=READ_WITHIN)  # an absolute upsert: safe to repeat
    return product_out(saved)
