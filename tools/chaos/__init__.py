"""`sagashop chaos`: a seeded campaign of concurrent orders under random faults and orchestrator kills, then a
check that no money or stock was lost or counted twice."""
