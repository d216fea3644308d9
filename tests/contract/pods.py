"""Run a rendered container locally: the Dockerfile's entrypoint + the pod's args, env and volumes.

What is translated, and only that: absolute mount paths live under a scratch root, container
ports are mapped to free loopback ports (``--host 0.0.0.0`` becomes 127.0.0.1), tini is checked
and dropped (it is PID 1 in the image), and console scripts resolve to this venv.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Image:
    """The parts of a Dockerfile's final stage a pod relies on."""

    entrypoint: list[str]
    cmd: list[str]
    exposed: set[int]

    @classmethod
    def parse(cls, dockerfile: Path) -> Image:
        final = dockerfile.read_text().split("\nFROM ")[-1]
        entry = re.search(r"^ENTRYPOINT (\[.*\])$", final, re.M)
        cmd = re.search(r"^CMD (\[.*\])$", final, re.M)
        exposed = re.search(r"^EXPOSE (.+)$", final, re.M)
        assert entry, f"{dockerfile.name}: no JSON ENTRYPOINT in the final stage"
        assert cmd, f"{dockerfile.name}: no JSON CMD in the final stage"
        assert exposed, f"{dockerfile.name}: no EXPOSE in the final stage"
        return cls(
            json.loads(entry.group(1)),
            json.loads(cmd.group(1)),
            {int(p.split("/")[0]) for p in exposed.group(1).split()},
        )


@dataclass
class LocalPod:
    """One container of a rendered Deployment, materialized on this machine."""

    deployment: dict[str, Any]
    image: Image
    root: Path
    secrets: dict[str, dict[str, str]]
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    sa_token: str = ""
    # The pod this process stands in for (downward API metadata.name); default: the Deployment's.
    pod_name: str = ""
    # Files a derived image adds (image path -> source), like kind's gateway-fakes image.
    image_files: dict[str, Path] = field(default_factory=dict)
    ports: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = self.deployment["spec"]["template"]["spec"]
        assert len(spec["containers"]) == 1
        self.container: dict[str, Any] = spec["containers"][0]
        self.volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for port in self.container.get("ports", []):
            self.ports[port["containerPort"]] = free_port()

    # -- what the kubelet would do ----------------------------------------------------------------

    def local_path(self, container_path: str) -> Path:
        return self.root / self.deployment["metadata"]["name"] / container_path.lstrip("/")

    def mount_volumes(self) -> None:
        """Lay out the image's extra files and the pod's volumes under the scratch root."""
        for image_path, source in self.image_files.items():
            target = self.local_path(image_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)  # keeps the executable bit
        for mount in self.container.get("volumeMounts", []):
            assert "subPath" not in mount, "subPath mounts never see Secret updates"
            target = self.local_path(mount["mountPath"])
            target.mkdir(parents=True, exist_ok=True)
            for name, content in self._volume_files(self.volumes[mount["name"]]).items():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                (target / name).write_text(content)

    def _volume_files(self, volume: dict[str, Any]) -> dict[str, str]:
        if "emptyDir" in volume:
            return {}
        if "secret" in volume:
            source = volume["secret"]
            data = self.secrets.get(source["secretName"])
            assert data is not None or source.get("optional"), f"Secret {source} missing"
            return dict(data or {})
        if "configMap" in volume:
            return dict(self.config_maps[volume["configMap"]["name"]])
        if "projected" in volume:
            files: dict[str, str] = {}
            for src in volume["projected"]["sources"]:
                if "serviceAccountToken" in src:
                    files[src["serviceAccountToken"]["path"]] = self.sa_token
                else:
                    raise AssertionError(f"unsupported projected source {src}")
            return files
        raise AssertionError(f"unsupported volume {volume}")

    def env(self) -> dict[str, str]:
        """The container's env as the kubelet resolves it, paths and ports translated."""
        resolved: dict[str, str] = {}
        for item in self.container.get("env", []):
            value = self._env_value(item)
            if value is None:
                continue
            # $(VAR) references to earlier variables, as Kubernetes expands them.
            resolved[item["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: resolved.get(m.group(1), m.group(0)), value
            )
        return {k: self._translate(v) for k, v in resolved.items()}

    def _env_value(self, item: dict[str, Any]) -> str | None:
        if "valueFrom" not in item:  # the API server omits an empty value
            return str(item.get("value", ""))
        ref = item["valueFrom"]
        if "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            value = self.secrets.get(key_ref["name"], {}).get(key_ref["key"])
            assert value is not None or key_ref.get("optional"), f"missing {key_ref}"
            return value
        if "fieldRef" in ref:
            path = ref["fieldRef"]["fieldPath"]
            meta = self.deployment["metadata"]
            name = self.pod_name or meta["name"]
            return {"metadata.namespace": meta["namespace"], "metadata.name": name}[path]
        raise AssertionError(f"unsupported env source {item}")

    def _translate(self, value: str) -> str:
        if value in self.image_files:
            return str(self.local_path(value))
        for mount in self.container.get("volumeMounts", []):
            prefix = mount["mountPath"]
            if value == prefix or value.startswith(prefix.rstrip("/") + "/"):
                return str(self.local_path(prefix)) + value[len(prefix) :]
        if value.isdigit() and int(value) in self.ports:
            return str(self.ports[int(value)])
        return value

    def argv(self) -> list[str]:
        """ENTRYPOINT + (pod command/args or CMD), as the container runtime builds it."""
        assert "command" not in self.container, "command would replace tini as PID 1"
        args = self.container.get("args", self.image.cmd)
        argv = [*self.image.entrypoint, *args]
        assert argv[:2] == ["/usr/bin/tini", "--"], "tini must be PID 1 to reap CLI children"
        argv = argv[2:]
        script = Path(sys.executable).parent / argv[0]
        assert script.exists(), f"{argv[0]} is not a console script of this project"
        out = [str(script)]
        for arg in argv[1:]:
            if arg == "0.0.0.0":
                out.append("127.0.0.1")  # tests bind to loopback only
            elif arg.isdigit() and int(arg) in self.ports:
                out.append(str(self.ports[int(arg)]))
            else:
                out.append(arg)
        return out

    def probe_url(self, probe: str) -> str:
        """URL of a probe, checking that its port is one the container declares."""
        get = self.container[probe]["httpGet"]
        port = get["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in self.container["ports"] if p["name"] == port)
        assert port in self.ports, f"{probe} targets port {port}, not a container port"
        return f"http://127.0.0.1:{self.ports[port]}{get['path']}"

    def port_url(self, container_port: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[container_port]}{path}"

    def process_env(self, **extra: str) -> dict[str, str]:
        """A clean environment: the pod's env plus PATH, and what the test must add."""
        return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **self.env(), **extra}


def decode_secret(obj: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
