"""cfn-lint (with the serverless rules) and checkov find nothing in the templates; every skip says why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.deploy.template import ARTIFACTS_TEMPLATE, TEMPLATE

ROOT = Path(__file__).resolve().parents[2]
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
# checkov pins an older boto3 than the project, so it lives in its own virtualenv (`make checkov`).
CHECKOV = ROOT / "build" / "checkov-venv" / "bin" / "checkov"
SERVERLESS_RULES = ("--append-rules", "cfn_lint_serverless.rules")


def cfn_lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    command = [str(CFN_LINT), *SERVERLESS_RULES, "--", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_cfn_lint_with_the_serverless_rules_reports_nothing() -> None:
    result = cfn_lint(TEMPLATE, ARTIFACTS_TEMPLATE)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_serverless_rules_are_really_loaded(tmp_path: Path) -> None:
    """GIVEN a queue without a redrive policy, THEN ES6000 (a serverless rule) reports it: a silent
    "nothing found" above is not a missing plugin."""
    template = tmp_path / "queue.yaml"
    template.write_text("Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n")
    result = cfn_lint(template)
    assert "ES6000" in result.stdout


def test_checkov_fails_no_check_and_every_skip_is_justified_inline(
    tmp_path: Path, transformed: dict[str, Any]
) -> None:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make checkov` (checkov's own virtualenv)"
    # The SAM source (where the skips are written) and the transformed template (what is deployed:
    # the generated rules, event source mapping and functions, the skips carried over as metadata).
    deployed = tmp_path / "transformed.json"
    deployed.write_text(json.dumps(transformed))
    command = [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--output", "json"]
    for path in (TEMPLATE, ARTIFACTS_TEMPLATE, deployed):
        command += ["--file", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp_path)
    report = json.loads(result.stdout)
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for check in results["failed_checks"]
    ]
    assert failed == []
    unjustified = [
        check["check_id"]
        for check in results["skipped_checks"]
        if len(check["check_result"].get("suppress_comment", "")) < 20
    ]
    assert unjustified == []
