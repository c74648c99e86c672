"""A client factory that records every AWS call the product makes, with the client's region."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloud.clients import ClientFactory

READ_PREFIXES = ("Describe", "Get", "List", "Query", "Scan", "BatchGet", "Receive")


@dataclass(frozen=True)
class ApiCall:
    region: str
    service: str
    operation: str
    params: dict[str, Any] = field(compare=False)

    @property
    def mutating(self) -> bool:
        return not self.operation.startswith(READ_PREFIXES)


class RecordingClientFactory(ClientFactory):
    """Every client it builds appends each call to `calls` before the request is made."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[ApiCall] = []
        self._extensions: list[Any] = []

    def extend(self, extension: Any) -> None:
        """Register an object with `register(client)`, applied to every client built from now on."""
        self._extensions.append(extension)

    def build(self, service: str, region: str) -> Any:
        client = super().build(service, region)
        service_id = client.meta.service_model.service_id.hyphenize()

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls.append(ApiCall(region, service_id, model.name, dict(params)))

        client.meta.events.register(f"before-parameter-build.{service_id}", record)
        for extension in self._extensions:
            extension.register(client)
        return client

    def mutating_calls(self) -> list[ApiCall]:
        return [call for call in self.calls if call.mutating]
