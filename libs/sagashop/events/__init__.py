"""Domain events: what happened to a context's aggregates, written to its outbox in the transaction (or the
statement) of the effect, and relayed from there to NATS JetStream (docs/events.md).

`catalog` defines every event's payload, `envelope` the envelope around it, `outbox` the table and how a
repository writes to it, `relay` the background task that publishes the rows.
"""
