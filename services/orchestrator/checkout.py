"""The checkout saga, as the business runs it: each step beside the undo that compensates it."""

from sagashop.saga import Saga, Step

from .steps import Checkout, CheckoutSteps


def checkout_saga(steps: CheckoutSteps) -> Saga:
    return Saga(
        "checkout",
        Step("create_order", steps.create_order),
        Step("reserve_stock", steps.reserve_stock, undo=steps.release_stock),
        Step("charge_payment", steps.charge_payment, undo=steps.refund_payment),
        Step("create_shipment", steps.create_shipment, undo=steps.cancel_shipment),
        Step("commit_stock", steps.commit_stock),
        Step("approve_order", steps.approve_order),
        on_rejected=Step("reject_order", steps.reject_order),  # gets the reason: out_of_stock, payment_declined..
        input_type=Checkout,
    )
