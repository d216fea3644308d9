"""``docker run`` flags shaped like the chart's pods, read from ``helm template`` of the real
chart: the pod's user and group, the container's read-only root, dropped capabilities, no
privilege escalation, and each emptyDir mount as a tmpfs (an emptyDir is a writable, executable
directory for any uid: mode 1777, exec; Docker's own ``--tmpfs`` default would be noexec).
"""

from __future__ import annotations

from typing import Any

from tests.chart.conftest import container, one, render

Manifest = dict[str, Any]


def deployment(component: str) -> Manifest:
    return one(render(), "Deployment", f"-{component}")


def run_flags(component: str, *, tmp_options: str = "exec") -> list[str]:
    """The pod's security and volumes for ``docker run``; ``tmp_options`` ("exec" or
    "noexec") is how /tmp is mounted (a node whose emptyDirs are noexec)."""
    dep = deployment(component)
    pod: Manifest = dep["spec"]["template"]["spec"]
    ctr = container(dep)
    security: Manifest = {**pod.get("securityContext", {}), **ctr.get("securityContext", {})}
    flags = [f"--user={security['runAsUser']}:{security['runAsGroup']}"]
    if "fsGroup" in security:
        flags.append(f"--group-add={security['fsGroup']}")
    if security.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    for cap in security.get("capabilities", {}).get("drop", []):
        flags.append(f"--cap-drop={cap}")
    if security.get("allowPrivilegeEscalation") is False:
        flags.append("--security-opt=no-new-privileges")
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for mount in ctr.get("volumeMounts", []):
        if mount["name"] in empty_dirs:
            options = tmp_options if mount["mountPath"] == "/tmp" else "exec"
            flags.append(f"--tmpfs={mount['mountPath']}:rw,{options},nosuid,nodev,mode=1777")
    return flags


def mount_paths(component: str) -> dict[str, str]:
    """volume name -> mountPath of the chart's container (e.g. the gemini-auth Secret)."""
    return {m["name"]: m["mountPath"] for m in container(deployment(component))["volumeMounts"]}
