"""How the CLI shows results: rich tables for people, JSON for scripts (same content)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from consumers.review import GroupReview, ListReview, Review
from producers.service import Published
from schemas.audit import AuditEntry
from schemas.quota import Family, QuotaOrigin, RuleBudget
from sgmesh.operator import GroupAdoption, RegionStatus, RequestedResync
from sgmesh.wiring import Diagnosis, Finding


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    return value


def review_json(review: Review) -> list[dict[str, Any]]:
    """Each prefix list's changes, then each group's (what `sgmesh plan --json` prints)."""
    return [_list_json(item) for item in review.lists] + [_group_json(group) for group in review.groups]


def _group_json(review: GroupReview) -> dict[str, Any]:
    return {
        "group_id": review.group_id,
        "authorize": [str(rule.allows) for rule in review.plan.authorize],
        "revoke": [str(rule.allows) for rule in review.plan.revoke],
        "rules_before": {family.value: count for family, count in review.rules_before.items()},
        "rules_after": {family.value: count for family, count in review.rules_after.items()},
        "quota": review.quota,
        "over_quota": review.over_quota,
        "waiting": [str(rule.allows) for rule in review.plan.waiting],
    }


def _list_json(review: ListReview) -> dict[str, Any]:
    return {
        "prefix_list_id": review.prefix_list_id,
        "family": review.family.value,
        "add": [entry.cidr for entry in review.added],
        "remove": [entry.cidr for entry in review.removed],
        "entries_before": review.entries_before,
        "entries_after": review.entries_after,
        "max_entries_before": review.max_entries_before,
        "max_entries_after": review.max_entries_after,
        "waiting": [entry.cidr for entry in review.waiting],
    }


def budget_text(budget: RuleBudget) -> str:
    """e.g. "quota 60 per family (service-quotas)", or why Service Quotas could not be read."""
    text = f"quota {budget.quota} per family ({budget.origin.value}"
    if budget.unreadable is not None:
        text += f"; Service Quotas unreadable: {escape(budget.unreadable)}"
    elif budget.origin is QuotaOrigin.SETTING and budget.service_quota is not None:
        text += f"; account quota {budget.service_quota}"
    return text + ")"


def per_family(counts: dict[Family, int]) -> str:
    return " / ".join(str(counts.get(family, 0)) for family in Family)


def print_json(console: Console, value: Any) -> None:
    console.print_json(json.dumps(to_jsonable(value), default=str, sort_keys=True))


def status_tables(console: Console, statuses: list[RegionStatus]) -> None:
    for status in statuses:
        sources = Table(title=f"{status.region}: sources", title_justify="left")
        for column in ("source", "applied", "published", "behind", "members", "lag", "age"):
            sources.add_column(column)
        for source in status.sources:
            behind = {None: "?", True: "yes", False: "no"}[source.behind]
            published = "?" if source.published_version is None else str(source.published_version)
            style = "red" if source.silent else "" if source.behind is False else "yellow"
            age = (
                "retired"
                if source.retired
                else _seconds(source.age_seconds) + (" (silent)" if source.silent else "")
            )
            sources.add_row(
                source.source,
                str(source.applied_version),
                published,
                behind,
                str(source.members),
                _seconds(source.lag_seconds),
                age,
                style=style,
            )
        mode = " (observe mode: plans only, writes nothing)" if status.observing else ""
        groups = Table(
            title=f"{status.region}{mode}: security groups, {budget_text(status.rule_budget)}",
            title_justify="left",
        )
        for column in (
            "group",
            "drift",
            "to authorize",
            "to revoke",
            "rules now (v4 / v6)",
            "after (v4 / v6)",
            "headroom (v4 / v6)",
        ):
            groups.add_column(column)
        for group in status.groups:
            groups.add_row(
                group.group_id,
                "[green]in sync[/]" if group.in_sync else "[red]drift[/]",
                str(group.to_authorize),
                str(group.to_revoke),
                per_family(group.rules_used),
                per_family({family: group.rules_after.get(family, 0) for family in Family}),
                per_family(group.headroom),
                style="red" if min(group.headroom.values(), default=0) < 0 else "",
            )
        console.print(sources, groups)
        if status.lists:
            console.print(_lists_table(status))
        if status.convergence:
            console.print(_convergence_table(status))


def _convergence_table(status: RegionStatus) -> Table:
    table = Table(
        title=f"{status.region}: its sources across the mesh (acknowledgements)", title_justify="left"
    )
    for column in ("source", "published", "enforced everywhere", "regions behind", "launches waiting"):
        table.add_column(column)
    for item in status.convergence:
        table.add_row(
            item.source,
            "?" if item.published_version is None else str(item.published_version),
            "-" if item.enforced_everywhere is None else str(item.enforced_everywhere),
            ", ".join(item.behind) or "none",
            str(item.waiting_launches),
            style="yellow" if item.behind else "",
        )
    return table


def _seconds(value: float) -> str:
    """e.g. 0.4s, 12s, 7m 05s, 3h 02m."""
    if value < 10:
        return f"{value:.1f}s"
    whole = int(value)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _lists_table(status: RegionStatus) -> Table:
    table = Table(title=f"{status.region}: prefix lists", title_justify="left")
    for column in ("list", "family", "drift", "to add", "to remove", "entries (now / after)", "max entries"):
        table.add_column(column)
    for item in status.lists:
        table.add_row(
            item.prefix_list_id,
            item.family.value,
            "[green]in sync[/]" if item.in_sync else "[red]drift[/]",
            str(item.to_add),
            str(item.to_remove),
            f"{item.entries_before} / {item.entries_after}",
            _change(item.max_entries_before, item.max_entries_after),
        )
    return table


def plan_table(console: Console, region: str, review: Review, title: str) -> None:
    table = Table(title=f"{region}: {title}", title_justify="left")
    for column in ("group or list", "change", "rule or entry", "description"):
        table.add_column(column)
    for item in review.lists:
        if item.max_entries_after != item.max_entries_before:
            resized = _change(item.max_entries_before, item.max_entries_after)
            table.add_row(item.prefix_list_id, "[yellow]resize[/]", f"max entries {resized}", "")
        for entry in item.removed:
            table.add_row(item.prefix_list_id, "[red]- remove[/]", entry.cidr, entry.description)
        for entry in item.added:
            table.add_row(item.prefix_list_id, "[green]+ add[/]", entry.cidr, entry.description)
        for entry in item.waiting:
            table.add_row(item.prefix_list_id, "[red]waits (quota)[/]", entry.cidr, entry.description)
    for group in review.groups:
        for rule in group.plan.revoke:
            table.add_row(group.group_id, "[red]- revoke[/]", str(rule.allows), rule.description)
        for desired in group.plan.authorize:
            table.add_row(group.group_id, "[green]+ authorize[/]", str(desired.allows), desired.description)
        for desired in group.plan.waiting:
            table.add_row(group.group_id, "[red]waits (quota)[/]", str(desired.allows), desired.description)
    if review.is_empty and not review.waiting:
        table.add_row("", "[green]no changes[/]", "", "")
    console.print(table)


def _change(before: int, after: int) -> str:
    return str(before) if before == after else f"{before} -> {after}"


def published_table(console: Console, published: list[Published]) -> None:
    table = Table(title="published snapshots", title_justify="left")
    for column in ("group", "version", "members", "event id"):
        table.add_column(column)
    for item in published:
        table.add_row(item.group, str(item.version), str(item.members), item.event_id)
    console.print(table)


def adoption_table(console: Console, region: str, adoptions: list[GroupAdoption]) -> None:
    applied = any(group.applied for group in adoptions)
    title = f"{region}: rules adopted" if applied else f"{region}: rules to adopt (dry run; --apply adopts)"
    table = Table(title=title, title_justify="left")
    for column in ("group", "rule", "allows", "description now", "managed description"):
        table.add_column(column)
    for group in adoptions:
        for rule in group.rules:
            table.add_row(group.group_id, rule.rule_id, str(rule.permission), escape(rule.before), rule.after)
    if not any(group.rules for group in adoptions):
        table.add_row("", "", "[green]nothing to adopt[/]", "", "")
    console.print(table)


def resync_table(console: Console, requested: RequestedResync) -> None:
    table = Table(title=f"{requested.region}: resync requested", title_justify="left")
    for column in ("topic", "event id", "message id"):
        table.add_column(column)
    table.add_row(requested.topic_arn, requested.event_id, requested.message_id)
    console.print(table)


def events_table(console: Console, region: str, entries: list[AuditEntry]) -> None:
    table = Table(title=f"{region}: events (newest first)", title_justify="left")
    for column in ("at", "what", "source / group", "version", "cause / rules"):
        table.add_column(column)
    for entry in entries:
        if entry.kind.value == "snapshot-applied":
            table.add_row(
                entry.at.isoformat(timespec="seconds"),
                "applied",
                entry.source or "",
                str(entry.version),
                f"{entry.cause} ({entry.members} members)",
            )
        elif entry.kind.value == "acknowledged":
            table.add_row(
                entry.at.isoformat(timespec="seconds"),
                "acknowledged",
                entry.source or "",
                str(entry.version),
                f"enforced by {entry.acknowledged_by}",
            )
        else:
            changes = [f"+ {rule}" for rule in entry.authorized] + [f"- {rule}" for rule in entry.revoked]
            table.add_row(
                entry.at.isoformat(timespec="seconds"),
                "rules changed",
                entry.group_id or "",
                "",
                "\n".join(changes) + f"\ncaused by {', '.join(entry.causes) or 'replay'}",
            )
    console.print(table)


def diagnosis_json(diagnosis: Diagnosis) -> dict[str, Any]:
    """What `sgmesh doctor --json` prints."""
    return {
        "healthy": diagnosis.healthy,
        "regions": list(diagnosis.regions),
        "findings": [_finding_json(finding) for finding in diagnosis.findings],
        "repaired": [_finding_json(finding) for finding in diagnosis.repaired],
    }


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "region": finding.region,
        "part": finding.part.value,
        "subject": finding.subject,
        "problem": finding.problem,
        "fix": finding.fix,
        "repairable": finding.repair is not None,
    }


def diagnosis_table(console: Console, diagnosis: Diagnosis) -> None:
    if diagnosis.repaired:
        repaired = Table(title="repaired", title_justify="left")
        for column in ("region", "part", "subject", "was"):
            repaired.add_column(column)
        for finding in diagnosis.repaired:
            repaired.add_row(finding.region, finding.part.value, finding.subject, escape(finding.problem))
        console.print(repaired)
    if diagnosis.findings:
        table = Table(title="wiring problems", title_justify="left")
        for column in ("region", "part", "subject", "problem", "fix"):
            table.add_column(column)
        for finding in diagnosis.findings:
            table.add_row(
                finding.region,
                finding.part.value,
                finding.subject,
                escape(finding.problem),
                escape(finding.fix),
            )
        console.print(table)
    colour = "green" if diagnosis.healthy else "red"
    console.print(f"[{colour}]{escape(diagnosis.verdict())}[/]")
