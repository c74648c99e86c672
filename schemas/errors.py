"""Errors that cross layers: retryable ones fail a record for another try, permanent ones reject it."""


class SgmeshError(Exception):
    """Base of every error sgmesh raises on purpose; a layer's own errors live in that layer
    (consumers.errors)."""


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


class SnapshotTooLargeError(PermanentError):
    """A snapshot that no SNS delivery can carry, even with its members packed."""


class InvalidEventError(PermanentError):
    """A producer was invoked with an event it cannot act on."""


class RuleQuotaExceededError(PermanentError):
    """Applying a plan would push a group past its rule quota; nothing was changed.

    `rules_needed` is the group's inbound rules of `family` at the plan's peak, `quota` its quota.
    """

    def __init__(self, group_id: str, family: str, rules_needed: int, quota: int) -> None:
        self.group_id = group_id
        self.family = family
        self.rules_needed = rules_needed
        self.quota = quota
        super().__init__(self._explain())

    def _explain(self) -> str:
        return (
            f"security group {self.group_id} would need {self.rules_needed} {self.family} inbound rules, "
            f"over its quota of {self.quota}; nothing was changed"
        )


class PrefixListModifyFailedError(PermanentError):
    """AWS refused a list change after accepting it (state *-failed), e.g. a resize a group cannot hold."""


class SnapshotsNotPublishedError(RetryableError):
    """Some groups' snapshots could not be published (the others were); the message names each and why."""


class VersionConflictError(RetryableError):
    """Another producer kept claiming the next version of a source; the invocation is retried."""


class RuleConflictError(RetryableError):
    """Another writer changed a group or a prefix list between our read and our write."""


class AddressNotAssignedError(RetryableError):
    """A launching instance has no address for the configured mode yet."""


class CertificateUnavailableError(RetryableError):
    """The SNS signing certificate could not be fetched; another attempt may succeed."""
