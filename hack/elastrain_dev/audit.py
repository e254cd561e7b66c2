"""The local API server's audit log: which requests service accounts made, so a test can compare what
the operator used with what the chart's roles grant (docs/operations.md#permissions).

Only requests by service accounts outside kube-system are logged, at the Metadata level (who, verb,
resource, status; never a body), to ``logs/audit.log`` of the cluster's state directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  # The controllers' own service accounts: a lot of traffic that no test asks about.
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def audit_args(policy: Path, log: Path) -> list[str]:
    """kube-apiserver flags that write the log (the policy file is written here too)."""
    policy.write_text(AUDIT_POLICY)
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={log}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",  # an entry is on disk before the response: a test reads it at once
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=1",
    ]


@dataclass(frozen=True)
class Request:
    """One audited request: who did what to which resource, and the answer's code."""

    user: str
    verb: str
    group: str
    resource: str
    """``pods``, or ``trainingjobs/status`` for a subresource."""
    namespace: str
    code: int


def read_requests(log: Path, *, user: str | None = None) -> Iterator[Request]:
    """Each request in ``log`` once, optionally of one user only.

    A watch has two entries (its response started, then complete when it ends); a request is yielded
    at its first entry (by ``auditID``), so a watch still open counts as well as a closed one.
    """
    if not log.exists():
        return
    seen: set[str] = set()
    with log.open(encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            who = event.get("user", {}).get("username", "")
            ref = event.get("objectRef")
            if ref is None or (user is not None and who != user):
                continue
            audit_id = event.get("auditID")
            if audit_id is not None:
                if audit_id in seen:
                    continue
                seen.add(audit_id)
            resource = ref.get("resource", "")
            if ref.get("subresource"):
                resource = f"{resource}/{ref['subresource']}"
            yield Request(
                user=who,
                verb=event.get("verb", ""),
                group=ref.get("apiGroup", ""),
                resource=resource,
                namespace=ref.get("namespace", ""),
                code=int(event.get("responseStatus", {}).get("code", 0)),
            )
