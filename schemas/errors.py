"""The error hierarchy: retryable errors fail a record for another try, permanent ones reject it."""


class SgmeshError(Exception):
    """Base of every error sgmesh raises on purpose."""


class RetryableError(SgmeshError):
    """Another attempt may succeed: a race lost, an address not assigned yet."""


class PermanentError(SgmeshError):
    """The same input will fail the same way: it goes to the DLQ after its retries."""


class SettingsError(PermanentError):
    """A setting is missing or malformed; the message names the variable and its value."""


class InvalidRecordError(PermanentError):
    """A delivered message is not a snapshot this consumer may apply; `reason` is a short metric label."""

    def __init__(self, message: str, reason: str = "invalid-snapshot") -> None:
        super().__init__(message)
        self.reason = reason


class RuleQuotaExceededError(PermanentError):
    """Applying a plan would push a group past its rule quota; nothing was changed."""

    def __init__(self, group_id: str, family: str, rules_needed: int, quota: int) -> None:
        super().__init__(
            f"security group {group_id} would need {rules_needed} {family} inbound rules, "
            f"over its quota of {quota}; nothing was changed"
        )
        self.group_id = group_id
        self.family = family
        self.rules_needed = rules_needed
        self.quota = quota


class VersionConflictError(RetryableError):
    """Another producer kept claiming the next version of a source; the invocation is retried."""


class RuleConflictError(RetryableError):
    """Another writer changed a group between our read and our write (Duplicate / NotFound)."""


class AddressNotAssignedError(RetryableError):
    """A launching instance has no address for the configured mode yet."""
