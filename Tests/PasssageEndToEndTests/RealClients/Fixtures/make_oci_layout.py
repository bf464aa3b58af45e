#!/usr/bin/env python3
"""Builds a small multi-layer OCI image layout in OUTDIR, tagged TAG: three gzip layers of
deterministic files, a config and a manifest, all content-addressed under blobs/sha256/.

Usage: make_oci_layout.py OUTDIR TAG
"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile


def write_blob(outdir: str, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(outdir, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def layer(files: dict) -> tuple:
    """A gzip tar of `files` (path -> bytes): (compressed, uncompressed digest)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 1704164645
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), "sha256:" + hashlib.sha256(tar).hexdigest()


def main() -> None:
    outdir, tag = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(outdir, "blobs", "sha256"), exist_ok=True)
    generator = random.Random(tag)
    layers, diff_ids = [], []
    for index, size in enumerate([300_000, 1_500_000, 40_000]):
        # Random bytes do not compress: the layers keep their size on the wire.
        compressed, diff_id = layer({f"opt/passsage/layer{index}.bin": generator.randbytes(size),
                                     f"opt/passsage/layer{index}.txt": f"layer {index} of {tag}\n".encode()})
        descriptor = write_blob(outdir, compressed)
        descriptor["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        layers.append(descriptor)
        diff_ids.append(diff_id)
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_descriptor = write_blob(outdir, json.dumps(config, sort_keys=True).encode())
    config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_descriptor, "layers": layers}
    manifest_descriptor = write_blob(outdir, json.dumps(manifest, sort_keys=True).encode())
    manifest_descriptor["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    manifest_descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(outdir, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [manifest_descriptor]}, f)
    with open(os.path.join(outdir, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
