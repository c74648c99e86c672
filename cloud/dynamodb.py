"""DynamoDB adapter: the producer's version ledger and the consumer's newest-wins source states.

Items (string keys `pk`, `sk`):
- `producer#<cluster>` / `<group>`: the last version a producer of this region claimed for a group,
  the last one it published, and, once the settings no longer name the group, when its retirement
  was first published (the item then expires by TTL, `expires_at`).
- `state#<cluster>` / `<account>/<region>/<group>`: the newest snapshot applied for a source.
- `events#<cluster>` / `<time>#<kind>#...`: the audit trail, dropped by TTL (`expires_at`).
- `consumer#<cluster>` / `hold#<source label>`: since when the consumer keeps the rules of a source it
  has no snapshot of (TTL `expires_at`); `consumer#<cluster>` / `resync-answered`: when it last
  answered resync requests.
- `acks#<cluster>` / `<source>#<account>/<region>`: the newest version of one of this region's sources
  that a region acknowledged enforcing, and when (TTL `expires_at`, renewed by every acknowledgement).
- `admission#<cluster>` / `<group>#<instance>`: a launch waiting for the admission barrier, and how it
  was settled (TTL `expires_at`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from schemas.admission import AckRecord, Admission, AdmissionStatus
from schemas.audit import AuditEntry
from schemas.events import MembershipSnapshot, parse_snapshot
from schemas.ledger import EPOCH, RETIREMENT_PERIOD, LedgerEntry, Stored

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def _producer_key(cluster: str) -> str:
    return f"producer#{cluster}"


def _state_key(cluster: str) -> str:
    return f"state#{cluster}"


def _events_key(cluster: str) -> str:
    return f"events#{cluster}"


def _consumer_key(cluster: str) -> str:
    return f"consumer#{cluster}"


def _acks_key(cluster: str) -> str:
    return f"acks#{cluster}"


def _admission_key(cluster: str) -> str:
    return f"admission#{cluster}"


# An acknowledgement record outlives its source's last one by as long as a retired group is published
# (every true-up acknowledges every live source, so only the records of gone sources and regions expire).
ACK_RETENTION = RETIREMENT_PERIOD
# A settled or abandoned admission is kept a day for `sgmesh status` and the investigation of a launch;
# the longest a pending one can matter is the hook's heartbeat timeout (7,200 s at most).
ADMISSION_RETENTION = timedelta(days=1)
HOLD_PREFIX = "hold#"
RESYNC_ANSWERED = "resync-answered"


# BatchWriteItem takes at most 25 items; unprocessed ones are sent again a few times.
BATCH_WRITE_LIMIT = 25
BATCH_WRITE_ATTEMPTS = 4


class Table:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._name = table_name

    def ledger(self, cluster: str) -> dict[str, LedgerEntry]:
        """Every group's claimed and published versions, retired ones included (one consistent query)."""
        return {
            item["sk"]["S"]: LedgerEntry(
                claimed=int(item.get("version", {}).get("N", "0")),
                published=int(item["published_version"]["N"]) if "published_version" in item else None,
                published_digest=item.get("published_digest", {}).get("S"),
                retired_at=datetime.fromisoformat(item["retired_at"]["S"]) if "retired_at" in item else None,
            )
            for item in self._query(_producer_key(cluster))
        }

    def mark_published(
        self, cluster: str, group: str, version: int, digest: str, *, at: datetime, retired: bool
    ) -> None:
        """Record a successful publish; a racing producer's older version never moves it back.

        The first retirement published sets when the group retired, and the TTL that forgets the group
        once its retirement period is over; any other publish (the group named again) clears both.
        """
        values = {":v": {"N": str(version)}, ":digest": {"S": digest}, ":at": {"S": at.isoformat()}}
        update = "SET published_version = :v, published_digest = :digest, published_at = :at"
        if retired:
            expires = (at + RETIREMENT_PERIOD - EPOCH).total_seconds()
            values[":expires"] = {"N": str(int(expires))}
            update += ", retired_at = if_not_exists(retired_at, :at)"
            update += ", expires_at = if_not_exists(expires_at, :expires)"
        else:
            update += " REMOVE retired_at, expires_at"
        self._conditional(
            lambda: self._client.update_item(
                TableName=self._name,
                Key={"pk": {"S": _producer_key(cluster)}, "sk": {"S": group}},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(published_version) OR published_version < :v",
                ExpressionAttributeValues=values,
            )
        )

    def claim_version(self, cluster: str, group: str, expected: int, claimed: int) -> bool:
        """Move the group's version from `expected` to `claimed`; False if another producer moved it."""
        return self._conditional(
            lambda: self._client.update_item(
                TableName=self._name,
                Key={"pk": {"S": _producer_key(cluster)}, "sk": {"S": group}},
                UpdateExpression="SET version = :claimed, claimed_at = :now",
                ConditionExpression="attribute_not_exists(pk) OR version = :expected",
                ExpressionAttributeValues={
                    ":claimed": {"N": str(claimed)},
                    ":expected": {"N": str(expected)},
                    ":now": {"S": _now()},
                },
            )
        )

    def store_if_newer(self, snapshot: MembershipSnapshot) -> Stored:
        """Replace the source's state unless the table already holds this version or a newer one."""
        replaced: dict[str, Any] = {}

        def put() -> None:
            response = self._client.put_item(
                TableName=self._name,
                Item={
                    "pk": {"S": _state_key(snapshot.cluster)},
                    "sk": {"S": snapshot.source.key},
                    "version": {"N": str(snapshot.version)},
                    "event_id": {"S": str(snapshot.event_id)},
                    "snapshot": {"S": snapshot.to_json()},
                    "stored_at": {"S": _now()},
                },
                ConditionExpression="attribute_not_exists(pk) OR version < :version",
                ExpressionAttributeValues={":version": {"N": str(snapshot.version)}},
                # The item it replaced, in the same call: none means the table had no state of the source.
                ReturnValues="ALL_OLD",
            )
            replaced.update(response.get("Attributes", {}))

        if not self._conditional(put):
            return Stored.STALE
        return Stored.NEWER if replaced else Stored.FIRST

    def stored_states(self, cluster: str) -> list[MembershipSnapshot]:
        """The newest applied snapshot of every source of the cluster."""
        return [parse_snapshot(item["snapshot"]["S"]) for item in self._query(_state_key(cluster))]

    def stored_states_with_times(self, cluster: str) -> list[tuple[MembershipSnapshot, datetime]]:
        """The newest applied snapshot of every source, with when this table stored it."""
        return [
            (parse_snapshot(item["snapshot"]["S"]), datetime.fromisoformat(item["stored_at"]["S"]))
            for item in self._query(_state_key(cluster))
        ]

    def forget_states(self, cluster: str, source_keys: Collection[str]) -> None:
        """Delete the states of these sources (sources that are no longer peers)."""
        self._batch_write([_delete(_state_key(cluster), key) for key in sorted(source_keys)])

    def holds(self, cluster: str) -> dict[str, datetime]:
        """Since when the consumer keeps the rules of each source it has no snapshot of, by label."""
        return {
            item["sk"]["S"].removeprefix(HOLD_PREFIX): datetime.fromisoformat(item["since"]["S"])
            for item in self._query(_consumer_key(cluster), sort_key_prefix=HOLD_PREFIX)
        }

    def record_holds(
        self,
        cluster: str,
        *,
        start: Collection[str],
        clear: Collection[str],
        at: datetime,
        keep_for: timedelta,
    ) -> None:
        """Start holds at `at` (a hold another consumer started first keeps its time), and clear others.

        A hold expires from the table `keep_for` after it starts, should nothing clear it.
        """
        expires_at = str(int((at + keep_for).timestamp()))
        for label in sorted(start):
            item = {
                "pk": {"S": _consumer_key(cluster)},
                "sk": {"S": HOLD_PREFIX + label},
                "since": {"S": at.isoformat()},
                "expires_at": {"N": expires_at},
            }
            self._conditional(
                partial(
                    self._client.put_item,
                    TableName=self._name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk)",
                )
            )
        self._batch_write([_delete(_consumer_key(cluster), HOLD_PREFIX + label) for label in sorted(clear)])

    def resync_answers(self, cluster: str) -> list[datetime]:
        """When this region's consumer last answered resync requests, the newest first."""
        for item in self._query(_consumer_key(cluster), sort_key_prefix=RESYNC_ANSWERED):
            if item["sk"]["S"] == RESYNC_ANSWERED:
                return sorted((datetime.fromisoformat(at["S"]) for at in item["at"]["L"]), reverse=True)
        return []

    def record_resync_answers(self, cluster: str, answers: Sequence[datetime]) -> None:
        """Replace the record of recent answers (two consumers answering at once: the last write wins,
        which at worst lets one more answer through)."""
        self._client.put_item(
            TableName=self._name,
            Item={
                "pk": {"S": _consumer_key(cluster)},
                "sk": {"S": RESYNC_ANSWERED},
                "at": {"L": [{"S": at.isoformat()} for at in answers]},
            },
        )

    def acknowledgements(self, cluster: str, source: str | None = None) -> list[AckRecord]:
        """The newest acknowledgement of each region, for one of this region's sources (all, if None)."""
        items = self._query(_acks_key(cluster), sort_key_prefix=None if source is None else f"{source}#")
        records = [_ack_record(item) for item in items]
        return [record for record in records if source is None or record.source == source]

    def record_acknowledgement(self, cluster: str, record: AckRecord) -> bool:
        """Keep the record unless the region already acknowledged this version or a newer one."""
        expires = (record.acknowledged_at + ACK_RETENTION - EPOCH).total_seconds()
        return self._conditional(
            lambda: self._client.put_item(
                TableName=self._name,
                Item={
                    "pk": {"S": _acks_key(cluster)},
                    "sk": {"S": f"{record.source}#{record.region}"},
                    "source": {"S": record.source},
                    "region": {"S": record.region},
                    "version": {"N": str(record.version)},
                    "produced_at": {"S": record.produced_at.isoformat()},
                    "acknowledged_at": {"S": record.acknowledged_at.isoformat()},
                    "expires_at": {"N": str(int(expires))},
                },
                ConditionExpression="attribute_not_exists(pk) OR version < :version",
                ExpressionAttributeValues={":version": {"N": str(record.version)}},
            )
        )

    def record_admissions(self, cluster: str, admissions: Sequence[Admission]) -> None:
        """Record launches as waiting (a redelivered action's record is replaced: same instance, newer
        version or token)."""
        self._batch_write(
            [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": _admission_key(cluster)},
                            "sk": {"S": f"{admission.group}#{admission.instance_id}"},
                            "group": {"S": admission.group},
                            "instance_id": {"S": admission.instance_id},
                            "hook_name": {"S": admission.hook_name},
                            "token": {"S": admission.token},
                            "version": {"N": str(admission.version)},
                            "deadline": {"S": admission.deadline.isoformat()},
                            "status": {"S": admission.status.value},
                            "expires_at": {
                                "N": str(
                                    int((admission.deadline + ADMISSION_RETENTION - EPOCH).total_seconds())
                                )
                            },
                        }
                    }
                }
                for admission in admissions
            ]
        )

    def admissions(self, cluster: str, group: str | None = None) -> list[Admission]:
        """The recorded admissions of one of this region's groups (all, if None), settled ones included."""
        items = self._query(_admission_key(cluster), sort_key_prefix=None if group is None else f"{group}#")
        admissions = [_admission(item) for item in items]
        return [admission for admission in admissions if group is None or admission.group == group]

    def settle_admission(
        self, cluster: str, admission: Admission, status: AdmissionStatus, at: datetime
    ) -> bool:
        """Settle a pending admission; False when another invocation settled it first (or it was
        recorded again, for another action): only the winner completes the lifecycle action."""
        return self._conditional(
            lambda: self._client.update_item(
                TableName=self._name,
                Key={
                    "pk": {"S": _admission_key(cluster)},
                    "sk": {"S": f"{admission.group}#{admission.instance_id}"},
                },
                UpdateExpression="SET #status = :status, settled_at = :at",
                ConditionExpression="#status = :pending AND #token = :token",
                ExpressionAttributeNames={"#status": "status", "#token": "token"},
                ExpressionAttributeValues={
                    ":status": {"S": status.value},
                    ":pending": {"S": AdmissionStatus.PENDING.value},
                    ":token": {"S": admission.token},
                    ":at": {"S": at.isoformat()},
                },
            )
        )

    def record(self, cluster: str, entries: Sequence[AuditEntry], retention_days: int) -> None:
        """Append entries to the audit trail, in as few BatchWriteItem calls as the limit allows."""
        requests: list[Any] = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": _events_key(cluster)},
                        "sk": {"S": entry.sort_key},
                        "entry": {"S": entry.model_dump_json(exclude_defaults=True)},
                        "expires_at": {"N": str(entry.expires_at(retention_days))},
                    }
                }
            }
            for entry in entries
        ]
        self._batch_write(requests)

    def _batch_write(self, requests: Sequence[Any]) -> None:
        """Puts and deletes in as few BatchWriteItem calls as the limit allows (none for none)."""
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            batch = list(requests[start : start + BATCH_WRITE_LIMIT])
            for _attempt in range(BATCH_WRITE_ATTEMPTS):
                response = self._client.batch_write_item(RequestItems={self._name: batch})
                batch = response.get("UnprocessedItems", {}).get(self._name, [])
                if not batch:
                    break
            else:
                raise RuntimeError(f"{len(batch)} writes stayed unprocessed in {self._name}")

    def audit_trail(self, cluster: str, limit: int, source: str | None = None) -> list[AuditEntry]:
        """The newest `limit` entries of the trail (of one source, if given), newest first."""
        entries: list[AuditEntry] = []
        for item in self._query(_events_key(cluster), newest_first=True):
            entry = AuditEntry.model_validate_json(item["entry"]["S"])
            if source is None or source in (entry.source, *entry.causes_sources):
                entries.append(entry)
            if len(entries) >= limit:
                break
        return entries

    def _query(
        self, partition: str, *, newest_first: bool = False, sort_key_prefix: str | None = None
    ) -> Iterator[dict[str, Any]]:
        condition, values = "pk = :pk", {":pk": {"S": partition}}
        if sort_key_prefix is not None:
            condition += " AND begins_with(sk, :prefix)"
            values[":prefix"] = {"S": sort_key_prefix}
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
            ScanIndexForward=not newest_first,
        ):
            yield from page["Items"]

    @staticmethod
    def _conditional(write: Callable[[], object]) -> bool:
        try:
            write()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _ack_record(item: dict[str, Any]) -> AckRecord:
    return AckRecord(
        source=item["source"]["S"],
        region=item["region"]["S"],
        version=int(item["version"]["N"]),
        produced_at=datetime.fromisoformat(item["produced_at"]["S"]),
        acknowledged_at=datetime.fromisoformat(item["acknowledged_at"]["S"]),
    )


def _admission(item: dict[str, Any]) -> Admission:
    return Admission(
        group=item["group"]["S"],
        instance_id=item["instance_id"]["S"],
        hook_name=item["hook_name"]["S"],
        token=item["token"]["S"],
        version=int(item["version"]["N"]),
        deadline=datetime.fromisoformat(item["deadline"]["S"]),
        status=AdmissionStatus(item["status"]["S"]),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _delete(partition: str, sort_key: str) -> dict[str, Any]:
    return {"DeleteRequest": {"Key": {"pk": {"S": partition}, "sk": {"S": sort_key}}}}
