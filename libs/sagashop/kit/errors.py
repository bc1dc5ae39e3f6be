"""Domain errors: what a service refuses and why, with a stable code. No transport here."""


class DomainError(Exception):
    code = "error"

    def __init__(self, detail: str = "", *, code: str | None = None) -> None:
        super().__init__(detail or (code or self.code).replace("_", " "))
        self.code = code or self.code
        self.detail = str(self)


class NotFound(DomainError):
    code = "not_found"


class Invalid(DomainError):
    code = "validation_error"


class Conflict(DomainError):
    code = "conflict"


class Rejected(DomainError):
    """A business refusal: final, never retried (out_of_stock, payment_declined, ...)."""

    code = "rejected"


class Compensated(DomainError):
    """The action's key was already compensated (a tombstone): the late action must not take effect."""

    code = "compensated"


class Unauthenticated(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class TooMany(DomainError):
    """Refused for now to bound what such requests cost (a rate limit, a full queue of password hashes): a caller
    is told to come back after `retry_after` seconds. The refusing service is healthy: no breaker counts it and no
    client retries it at once."""

    code = "rate_limited"

    def __init__(self, detail: str = "", *, code: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency did not answer in time: transient from the caller's view."""

    code = "service_unavailable"
