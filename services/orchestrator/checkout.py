"""The sagas of an order, as the business runs them: each step beside the undo that compensates it."""

from sagashop.saga import Saga, Step, Together

from .steps import Checkout, CheckoutSteps, undo_of_checkout


def checkout_saga(steps: CheckoutSteps) -> Saga:
    return Saga(
        "checkout",
        Together(  # the order is recorded (PENDING) while its stock is reserved: neither needs the other
            Step("create_order", steps.create_order),
            Step("reserve_stock", steps.reserve_stock, undo=steps.release_stock)),
        Step("charge_payment", steps.charge_payment, undo=steps.refund_payment),
        # the units are sold before anything is shipped: a reservation the sweeper released while the saga was held
        # up is taken again here or refused (out_of_stock), and the saga compensates; release_stock gives them back
        Step("commit_stock", steps.commit_stock),
        Step("create_shipment", steps.create_shipment, undo=steps.cancel_shipment),
        # shipped: no way back from here, only forward
        Step("approve_order", steps.approve_order, until_done=True),
        # the way out, with the reason (out_of_stock, payment_declined, ...): an order is recorded if the saga
        # failed before it was, then rejected
        on_rejected=(Step("create_order", steps.create_order), Step("reject_order", steps.reject_order)),
        input_type=Checkout,
    )


def cancellation_saga(steps: CheckoutSteps) -> Saga:
    """Cancelling an approved order has no way back: every step is retried until it is done."""
    return Saga(
        "cancellation",
        Step("cancel_shipment", undo_of_checkout(steps.cancel_shipment, "create_shipment")),
        Step("refund_payment", undo_of_checkout(steps.refund_payment, "charge_payment")),
        Step("release_stock", undo_of_checkout(steps.release_stock, "reserve_stock")),
        Step("cancel_order", steps.cancel_order),
        on_rejected=None,
        input_type=Checkout,
    )
