"""Property tests of every operation in the running gateway's OpenAPI (schemathesis, stateless): whatever an operation
is sent, by an admin or by a caller without a token, it never answers 5xx, never shows a stack trace or an internal
address, and answers only with the statuses, media types, headers and bodies its OpenAPI declares. Deterministic
(fixed seed, no example database) and bounded (20 examples per operation), on the SQLite shop only."""

import time
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.shop import Shop

CONFIG = {"seed": 20_260_101, "generation": {"mode": "all", "max-examples": 20, "deterministic": True,
                                             "database": "none"}}
INTERNALS = ("Traceback", "127.0.0.1", "grpc", "StatusCode", 'File "')
REFILL_SECONDS = 2.0  # the default rate limits' bursts are full again this long after a flood


@schemathesis.check
def no_internals(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """No error tells how the shop is built: no stack trace, no backend address, no gRPC status."""
    shown = [word for word in INTERNALS if response.status_code >= 400 and word in response.text]
    assert not shown, f"the answer shows {shown}"


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, no_internals]


@pytest.fixture(params=["anonymous", "admin"])
def caller(request: pytest.FixtureRequest, shop: Shop) -> dict[str, str]:
    return shop.admin if request.param == "admin" else {}


@pytest.fixture
def gateway_schema(request: pytest.FixtureRequest, shop: Shop,
                   caller: dict[str, str]) -> Iterator[schemathesis.BaseSchema]:
    if shop.env.get("SAGASHOP_DATABASE_URL"):
        pytest.skip("the API is the same on PostgreSQL: the SQLite run covers it")
    request.node._nodeid = request.node.nodeid  # schemathesis 4.32 reads this attribute, which pytest 9.2 dropped
    yield schemathesis.openapi.from_url(f"{shop.url}/openapi.json", config=schemathesis.Config.from_dict(CONFIG))
    shop.clear_faults()  # an admin's fuzzed PUT /v1/admin/faults may have added a (harmless) rule
    time.sleep(REFILL_SECONDS)  # the next tests' admin calls find the admin's bucket full again


schema = schemathesis.pytest.from_fixture("gateway_schema")


@schema.parametrize()
def test_no_operation_answers_a_server_error_or_outside_its_openapi(case: schemathesis.Case,
                                                                    caller: dict[str, str]) -> None:
    case.call_and_validate(headers=caller, checks=CHECKS)


def test_chains_of_calls_that_follow_each_answer_never_answer_a_server_error(shop: Shop) -> None:
    """Stateful: each step takes its ids from an earlier answer (an order placed, then read, its saga read,
    cancelled, ...: the OpenAPI's links from a placed order, and those schemathesis infers), as an admin, and every
    answer is checked as above. Bounded: 20 chains of at most 6 calls."""
    if shop.env.get("SAGASHOP_DATABASE_URL"):
        pytest.skip("the API is the same on PostgreSQL: the SQLite run covers it")
    schema = schemathesis.openapi.from_url(f"{shop.url}/openapi.json", config=schemathesis.Config.from_dict(CONFIG))
    machine = schema.as_state_machine()
    followed = {name.split("__")[-1] for name in vars(machine) if name.startswith("POST_v1_orders___201_")}
    assert followed == {"GET_v1_orders_order_id_", "GET_v1_orders_order_id_saga", "POST_v1_orders_order_id_cancel"}

    class AsAdmin(machine):  # type: ignore[valid-type, misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"headers": shop.admin}

        def validate_response(self, response: schemathesis.Response, case: schemathesis.Case,
                              additional_checks: object = None, **kwargs: object) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    try:
        AsAdmin.run(settings=hypothesis.settings(max_examples=20, stateful_step_count=6, deadline=None,
                                                 derandomize=True, database=None,
                                                 suppress_health_check=list(hypothesis.HealthCheck)))
    finally:
        shop.clear_faults()
        time.sleep(REFILL_SECONDS)
