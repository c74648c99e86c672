"""Client factory for the local runtime: every product client carries the runtime's extensions."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from boto3.session import Session

from cloud.clients import ClientFactory

READ_PREFIXES = ("Describe", "Get", "List", "Query", "Scan", "BatchGet", "Receive")


class ClientExtension(Protocol):
    def register(self, client: Any) -> None: ...


class ExtendedClientFactory(ClientFactory):
    """A ClientFactory whose clients get each registered extension's botocore event handlers."""

    def __init__(self, session: Session, *extensions: ClientExtension) -> None:
        super().__init__(session)
        self._extensions = list(extensions)

    def extend(self, extension: ClientExtension) -> None:
        """Applies to clients built from now on."""
        self._extensions.append(extension)

    def build(self, service: str, region: str) -> Any:
        client = super().build(service, region)
        for extension in self._extensions:
            extension.register(client)
        return client


@dataclass(frozen=True)
class ApiCall:
    region: str
    service: str
    operation: str
    params: dict[str, Any]

    @property
    def mutating(self) -> bool:
        return not self.operation.startswith(READ_PREFIXES)


class CallLedger:
    """Records every API call the product makes, with the region of the client that made it."""

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []

    def register(self, client: Any) -> None:
        region = client.meta.region_name
        service = client.meta.service_model.service_id.hyphenize()

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls.append(ApiCall(region, service, model.name, dict(params)))

        client.meta.events.register(f"before-parameter-build.{service}", record)

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int) -> list[ApiCall]:
        return self.calls[mark:]

    def counts(self, since: int = 0) -> Counter[str]:
        """Calls per `service:Operation`."""
        return Counter(f"{call.service}:{call.operation}" for call in self.calls[since:])
