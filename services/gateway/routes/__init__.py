"""One router per resource."""

READ_WITHIN = 2.0  # seconds a read may keep retrying a backend that does not answer; writes are not retried
