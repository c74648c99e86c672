"""Resolve a (transformed) template's intrinsic functions, for the resources moto does not create."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

NO_VALUE = object()
SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    """Evaluates Ref, GetAtt, Sub, Join, Split, Select, If and the condition functions.

    `ref` and `getatt` answer for resources (from what moto deployed); parameters and pseudo
    parameters come from `parameters`, with the template's defaults and list types applied.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str],
        pseudo: Mapping[str, str],
        ref: Callable[[str], str],
        getatt: Callable[[str, str], str],
    ) -> None:
        self._template = template
        self._ref = ref
        self._getatt = getatt
        self._values: dict[str, Any] = dict(pseudo)
        for name, spec in template.get("Parameters", {}).items():
            value = str(parameters.get(name, spec.get("Default", "")))
            listed = spec["Type"] == "CommaDelimitedList" or spec["Type"].startswith("List<")
            self._values[name] = value.split(",") if listed else value

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self._template["Conditions"][name]))

    def resource(self, logical_id: str) -> dict[str, Any] | None:
        """The resource's resolved properties, or None when its condition is false."""
        resource = self._template["Resources"][logical_id]
        if "Condition" in resource and not self.condition(resource["Condition"]):
            return None
        resolved: dict[str, Any] = self.resolve(resource.get("Properties", {}))
        return resolved

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [item for item in (self.resolve(item) for item in node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def _reference(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self._values:
            return self._values[name]
        return self._ref(name)

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {key: self.resolve(value) for key, value in variables.items()}

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name and name.split(".", 1)[0] not in self._values:
                return self._getatt(*name.split(".", 1))
            return str(self._reference(name))

        return SUB_VARIABLE.sub(value, text)


_FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda r, name: r._reference(name),
    "Fn::GetAtt": lambda r, arg: r._getatt(*(arg.split(".", 1) if isinstance(arg, str) else arg)),
    "Fn::Sub": lambda r, arg: r._sub(arg),
    "Fn::Join": lambda r, arg: arg[0].join(str(item) for item in r.resolve(arg[1])),
    "Fn::Split": lambda r, arg: str(r.resolve(arg[1])).split(arg[0]),
    "Fn::Select": lambda r, arg: r.resolve(arg[1])[int(r.resolve(arg[0]))],
    "Fn::If": lambda r, arg: r.resolve(arg[1] if r.condition(arg[0]) else arg[2]),
    "Fn::Equals": lambda r, arg: r.resolve(arg[0]) == r.resolve(arg[1]),
    "Fn::Not": lambda r, arg: not r.resolve(arg[0]),
    "Fn::And": lambda r, arg: all(r.resolve(item) for item in arg),
    "Fn::Or": lambda r, arg: any(r.resolve(item) for item in arg),
    "Condition": lambda r, name: r.condition(name),
}
