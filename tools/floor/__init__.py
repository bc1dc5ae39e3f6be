"""`sagashop floor`: what the shop's parts allow on this machine, the yardstick for `sagashop bench`.

It starts the shop's topology bare: a FastAPI gateway under uvicorn, an orchestrator and four services over
grpc.aio, each a process of its own with a table of its own (PostgreSQL through asyncpg at SAGASHOP_DATABASE_URL,
or SQLite files on a database thread, as the shop's parts use them), and Redis at SAGASHOP_REDIS_URL if set. Each
checkout makes the shop's calls, statements and round trips, and nothing else:

- the gateway: the rate limiter's one Redis call, the body validated by a pydantic model, StartCheckout;
- the orchestrator: ListProducts; the saga log's 6 writes (the saga created with its first stage, then 5 moves)
  around CreateOrder and ReserveStock at the same time, Charge, CommitStock, CreateShipment and ApproveOrder;
- the services' 8 statements: inventory 3 (prices, reservation, commit), order 3 (creation; a read and an update
  to approve), payment 1, shipping 1.

No protobuf, validation of the domain, idempotency, breakers, retries, deadlines, spans, metrics or fault rules:
the shop's `bench` figures over the floor's, taken the same hour, are what the shop's own code costs."""
