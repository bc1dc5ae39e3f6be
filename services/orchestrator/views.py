"""The saga log as the wire shows it."""

from collections.abc import Sequence

from sagashop.kit.clock import rfc3339
from sagashop.kit.settings import SAGA_PARTS
from sagashop.saga import AuditRecord, SagaRecord, StepRecord
from sagashop.v1 import orchestrator_pb2 as pb

from .canary import version_of


def saga_pb(record: SagaRecord, steps: Sequence[StepRecord] = (), audit: Sequence[AuditRecord] = ()) -> pb.Saga:
    return pb.Saga(
        saga_id=record.id, name=record.name, order_id=record.correlation_id, state=record.state,
        route=record.context.get("route", "v1"),
        versions={part: version_of(record.context, part) for part in SAGA_PARTS},
        failure_reason=record.failure_reason, created_at=rfc3339(record.created_at),
        updated_at=rfc3339(record.updated_at),
        steps=[pb.SagaStep(name=s.name, action=s.action, status=s.status, attempts=s.attempts,
                           handled_by=s.handled_by, error=s.error, started_at=rfc3339(s.started_at),
                           finished_at=rfc3339(s.finished_at)) for s in steps],
        audit=[pb.AuditEntry(action=a.action, reason=a.reason, actor=a.actor, at=rfc3339(a.at)) for a in audit],
    )
