"""Failure injection: rules that make calls of a method fail, slow down, or lose their reply after the work
committed. Every part serves them through FaultService while SAGASHOP_FAULTS_ENABLED is true; the random draws
come from one seeded generator per process, so a failing run can be replayed."""

import asyncio
import logging
import os
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, get_args

import grpc

from sagashop.v1 import common_pb2, faults_pb2, faults_pb2_grpc

from .errors import Invalid
from .status import ServerContext, trailers

log = logging.getLogger(__name__)
INJECTED = (("error-code", "injected_fault"),)
CrashPoint = Literal["before", "after"]  # the orchestrator dies before or after the step's call
CRASH_POINTS: tuple[CrashPoint, ...] = get_args(CrashPoint)
MAX_DELAY_MS = 60_000  # the longest a rule may hold a call
MAX_COUNT = 2**31 - 1  # a rule's count is an int32 in its proto


class FaultRules(faults_pb2_grpc.FaultServiceServicer):
    def __init__(self, methods: Iterable[str], seed: int | None = None) -> None:
        self.methods = frozenset(methods)
        self.random = random.Random(seed)
        self.rules: list[faults_pb2.FaultRule] = []

    async def AddFault(self, rule: faults_pb2.FaultRule, context: Any) -> faults_pb2.FaultRule:
        self.rules.append(self._valid(rule))
        log.warning("fault rule added: %s", str(rule).replace("\n", " "))
        return rule

    async def ListFaults(self, request: common_pb2.Empty, context: Any) -> faults_pb2.FaultList:
        return faults_pb2.FaultList(items=self.rules)

    async def ClearFaults(self, request: common_pb2.Empty, context: Any) -> faults_pb2.FaultList:
        cleared, self.rules = self.rules, []
        return faults_pb2.FaultList(items=cleared)  # with what each one fired

    def _valid(self, rule: faults_pb2.FaultRule) -> faults_pb2.FaultRule:
        if rule.method not in self.methods:
            raise Invalid(f"no method {rule.method!r} here; one of {', '.join(sorted(self.methods))}")
        if rule.error and (rule.error not in grpc.StatusCode.__members__ or rule.error == "OK"):
            raise Invalid(f"error must be a gRPC status name other than OK, not {rule.error!r}")
        if not 0 <= rule.rate <= 1 or (rule.HasField("count") and rule.count < 1):
            raise Invalid("rate is in [0, 1] and count at least 1")
        if not 0 <= rule.delay_ms <= MAX_DELAY_MS or rule.crash not in ("", *CRASH_POINTS):
            raise Invalid(f"delay_ms is 0 to {MAX_DELAY_MS}; crash is 'before', 'after' or empty")
        rule.id, rule.fired = uuid.uuid4().hex[:8], 0
        return rule

    def draw(self, method: str, crash: str = "") -> faults_pb2.FaultRule | None:
        """The rule that hits this call, if any (at most one); it counts the hit."""
        for rule in self.rules:
            if rule.method != method or rule.crash != crash:
                continue
            if rule.HasField("count") and rule.fired >= rule.count:
                continue
            if self.random.random() < rule.rate:
                rule.fired += 1
                return rule
        return None

    async def around(self, method: str, call: Callable[[], Awaitable[Any]], context: ServerContext) -> Any:
        """Runs one call of `method` under the rule that hits it."""
        rule = self.draw(method)
        if rule is None:
            return await call()
        if not rule.after_commit:
            await asyncio.sleep(rule.delay_ms / 1000)
            if rule.error:
                await context.abort(grpc.StatusCode[rule.error], f"injected {rule.error}",
                                    trailing_metadata=trailers(context, *INJECTED))
            return await call()
        await call()  # the work is done and committed ...
        await asyncio.sleep(rule.delay_ms / 1000)
        error = grpc.StatusCode[rule.error or "UNAVAILABLE"]  # ... and the reply is lost
        await context.abort(error, f"injected {error.name} after commit",
                            trailing_metadata=trailers(context, *INJECTED))

    def crash_point(self, step: str, when: str) -> None:
        """Exits the process at once, as a SIGKILL would, if a crash rule for this saga step hits."""
        if self.draw(step, crash=when) is not None:
            log.critical("injected crash %s step %s", when, step)
            logging.shutdown()
            os._exit(137)
