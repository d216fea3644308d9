#!/usr/bin/env python3
# ruff: noqa: E501, SIM115
# Vendored from the node reference beside the k8s binaries (../shared/k8s), ruff-formatted.
"""Write a single-layer OCI image archive (what `ctr images import` and `docker load` read) from
files on disk, without docker or a registry.  Used for the pause image:

    oci-image.py -o pause.tar --name registry.k8s.io/pause:3.10 --entrypoint /pause \
        --user 65535:65535 $K8S_HOME/bin/pause=/pause

Each positional argument is SRC=DEST: a file copied into the layer at DEST (mode kept), or a directory
whose contents go under DEST (owners, modes, symlinks, hard links and device nodes kept), e.g. a
debootstrap rootfs: `oci-image.py -o img.tar --name local/x:1 --cmd /bin/bash /tmp/rootfs=/`.  The archive holds
an OCI image layout (oci-layout, index.json, blobs/sha256/*) plus a Docker-style manifest.json, so both
`ctr -n k8s.io images import` and `docker load` accept it.  Output is deterministic (mtime 0, uid/gid 0).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
import tempfile


def normalize(ref):
    """Docker-style full reference, as the CRI looks images up: local/x:1 -> docker.io/local/x:1."""
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return "docker.io/library/" + ref
    if "." in first or ":" in first or first == "localhost":
        return ref
    return "docker.io/" + ref


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--name", required=True, help="full reference, e.g. registry.k8s.io/pause:3.10")
    ap.add_argument("--entrypoint", action="append", default=[])
    ap.add_argument("--cmd", action="append", default=[])
    ap.add_argument("--user", default="")
    ap.add_argument("--workdir", default="/")
    ap.add_argument("--level", type=int, default=6, help="gzip level (default 6)")
    ap.add_argument("files", nargs="+", help="SRC=DEST")
    a = ap.parse_args()

    # layer: uncompressed tar (sha256 = diff_id) streamed through gzip (sha256 = blob digest), on disk
    out_dir = os.path.dirname(os.path.abspath(a.output))
    raw_f = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".layer-", suffix=".tar")
    with tarfile.open(fileobj=raw_f, mode="w", format=tarfile.PAX_FORMAT) as t:
        dirs = set()
        for spec in a.files:
            src, dest = spec.split("=", 1)
            dest = dest.strip("/")
            if os.path.isdir(
                src
            ):  # a whole tree (e.g. a debootstrap rootfs): owners, modes, links kept
                for name in sorted(os.listdir(src)):
                    t.add(
                        os.path.join(src, name),
                        arcname=(dest + "/" + name).lstrip("/"),
                        recursive=True,
                    )
                continue
            parts = dest.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    ti = tarfile.TarInfo(d)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    ti.mtime = 0
                    t.addfile(ti)
                    dirs.add(d)
            with open(src, "rb") as f:
                ti = tarfile.TarInfo(dest)
                ti.size = os.fstat(f.fileno()).st_size
                ti.mode = os.stat(src).st_mode & 0o7777
                ti.mtime = 0
                t.addfile(ti, f)
    raw_f.flush()
    raw_f.seek(0)
    gz_f = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".layer-", suffix=".tar.gz")
    h_raw, h_gz = hashlib.sha256(), hashlib.sha256()

    class HashW:  # file wrapper hashing what gzip writes
        def write(self, b):
            h_gz.update(b)
            return gz_f.write(b)

        def flush(self):
            gz_f.flush()

    with gzip.GzipFile(fileobj=HashW(), mode="wb", mtime=0, compresslevel=a.level) as g:
        for chunk in iter(lambda: raw_f.read(1 << 20), b""):
            h_raw.update(chunk)
            g.write(chunk)
    gz_f.flush()
    diff_id, layer_digest, layer_size = (
        "sha256:" + h_raw.hexdigest(),
        "sha256:" + h_gz.hexdigest(),
        gz_f.tell(),
    )
    raw_f.close()

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    cfg = {
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": a.entrypoint or None,
            "Cmd": a.cmd or None,
            "User": a.user,
            "WorkingDir": a.workdir,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created": "1970-01-01T00:00:00Z", "created_by": "oci-image.py " + " ".join(a.files)}
        ],
    }
    cfg["config"] = {k: v for k, v in cfg["config"].items() if v}
    cfg_b = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
    man = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(cfg_b),
            "size": len(cfg_b),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }
    man_b = json.dumps(man, sort_keys=True, separators=(",", ":")).encode()
    name = normalize(a.name)
    tag = name.rsplit(":", 1)[1]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(man_b),
                "size": len(man_b),
                "platform": {"architecture": arch, "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    blobs = {sha(cfg_b): cfg_b, sha(man_b): man_b}
    docker_manifest = [
        {
            "Config": "blobs/sha256/" + sha(cfg_b)[7:],
            "RepoTags": [a.name],
            "Layers": ["blobs/sha256/" + layer_digest[7:]],
        }
    ]

    def add(t, name, data):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mode = 0o644
        ti.mtime = 0
        t.addfile(ti, io.BytesIO(data))

    tmp = a.output + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
        add(t, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add(t, "index.json", json.dumps(index, sort_keys=True).encode())
        add(t, "manifest.json", json.dumps(docker_manifest).encode())
        for d, b in sorted(blobs.items()):
            add(t, "blobs/sha256/" + d[7:], b)
        gz_f.seek(0)
        ti = t.gettarinfo(gz_f.name, arcname="blobs/sha256/" + layer_digest[7:])
        ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0o644, 0, 0, "", ""
        t.addfile(ti, gz_f)
    gz_f.close()
    os.replace(tmp, a.output)
    print(f"{a.output}: {name} manifest {sha(man_b)} ({layer_size} bytes compressed layer)")


if __name__ == "__main__":
    main()
