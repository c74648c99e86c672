"""Plays Lambda: runs a handler bound to its region's environment and clients, with a context."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Mapping
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import Any, TextIO

from cloud.clients import ClientFactory

Handler = Callable[[dict[str, Any], Any], Any]
# What each handler module exposes as `bind`: the handler for an environment and a client factory.
Binding = Callable[[Mapping[str, str], ClientFactory], Handler]


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object the handlers (and Powertools) read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = ""
    timeout_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_millis


def invoke(
    bind: Binding,
    name: str,
    environment: Mapping[str, str],
    clients: ClientFactory,
    event: dict[str, Any],
    metrics: TextIO | None = None,
) -> Any:
    """Run the handler `bind` makes as function `name` would run in its region, with `environment` for
    its environment variables and `clients` for its AWS clients. Not thread-safe: the runtime is serial.

    What the handler prints (its EMF metric lines; Lambda would ship them to CloudWatch) goes to
    `metrics`, or nowhere: here it would only interleave with the CLI's own output. Metrics stay on,
    so each invocation flushes and clears them as in Lambda.
    """
    region = environment["AWS_REGION"]
    context = LambdaContext(
        function_name=name,
        invoked_function_arn=f"arn:aws:lambda:{region}:123456789012:function:{name}",
        aws_request_id=str(uuid.uuid4()),
    )
    handler = bind(environment, clients)
    with redirect_stdout(metrics or io.StringIO()):
        return handler(event, context)
