#!/usr/bin/env python3
"""Builds a small PEP 503/691 package index in OUTDIR: two wheels and an sdist, with their
simple pages in HTML and JSON. The sdist has an in-tree build backend with no requirements, so
pip and uv build it without fetching anything.

Usage: make_pypi.py OUTDIR
Layout: OUTDIR/simple/index.html, OUTDIR/simple/<project>/index.{html,json}, OUTDIR/packages/<file>
"""
import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import zipfile

FIXED_TIME = (2024, 1, 2, 3, 4, 5)


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_bytes(name: str, version: str, files: dict) -> bytes:
    """A pure-Python wheel holding `files` (path -> text) plus its dist-info."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\nSummary: passsage test package\n"
    members = dict(files)
    members[f"{dist_info}/METADATA"] = metadata
    members[f"{dist_info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: make_pypi.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [f"{path},{record_hash(text.encode())},{len(text.encode())}" for path, text in members.items()]
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in members.items():
            info = zipfile.ZipInfo(path, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return out.getvalue()


BACKEND = '''
"""In-tree PEP 517 backend: builds the one-module wheel with the standard library alone."""
import base64, hashlib, os, zipfile

NAME, VERSION = "passsage_gamma", "0.1"

def get_requires_for_build_wheel(config_settings=None):
    return []

def get_requires_for_build_sdist(config_settings=None):
    return []

def _metadata():
    return f"Metadata-Version: 2.1\\nName: passsage-gamma\\nVersion: {VERSION}\\nSummary: passsage test sdist\\n"

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = f"{NAME}-{VERSION}.dist-info"
    os.makedirs(os.path.join(metadata_directory, dist_info), exist_ok=True)
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "w") as f:
        f.write(_metadata())
    return dist_info

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist_info = f"{NAME}-{VERSION}.dist-info"
    with open(os.path.join(os.path.dirname(__file__), "passsage_gamma.py")) as f:
        module = f.read()
    members = {"passsage_gamma.py": module, f"{dist_info}/METADATA": _metadata(),
               f"{dist_info}/WHEEL": "Wheel-Version: 1.0\\nGenerator: backend.py\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    def digest(text):
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record = [f"{p},{digest(t)},{len(t.encode())}" for p, t in members.items()] + [f"{dist_info}/RECORD,,"]
    members[f"{dist_info}/RECORD"] = "\\n".join(record) + "\\n"
    filename = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as archive:
        for path, text in members.items():
            archive.writestr(path, text)
    return filename
'''


def sdist_bytes() -> bytes:
    root = "passsage_gamma-0.1"
    members = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
                          '[project]\nname = "passsage-gamma"\nversion = "0.1"\n',
        "backend.py": BACKEND,
        "passsage_gamma.py": 'VERSION = "0.1"\n',
        "PKG-INFO": "Metadata-Version: 2.1\nName: passsage-gamma\nVersion: 0.1\nSummary: passsage test sdist\n",
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for path, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{path}")
            info.size = len(data)
            info.mtime = 1704164645
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def main() -> None:
    outdir = sys.argv[1]
    os.makedirs(os.path.join(outdir, "packages"), exist_ok=True)
    projects = {
        "passsage-alpha": [("passsage_alpha-1.0-py3-none-any.whl",
                            wheel_bytes("passsage_alpha", "1.0", {"passsage_alpha/__init__.py": 'VERSION = "1.0"\n'}))],
        "passsage-beta": [("passsage_beta-2.0-py3-none-any.whl",
                           wheel_bytes("passsage_beta", "2.0", {"passsage_beta/__init__.py": 'VERSION = "2.0"\n' + "# padding\n" * 4000}))],
        "passsage-gamma": [("passsage_gamma-0.1.tar.gz", sdist_bytes())],
    }
    for project, files in projects.items():
        page_dir = os.path.join(outdir, "simple", project)
        os.makedirs(page_dir, exist_ok=True)
        links, entries = [], []
        for filename, data in files:
            with open(os.path.join(outdir, "packages", filename), "wb") as f:
                f.write(data)
            digest = hashlib.sha256(data).hexdigest()
            links.append(f'<a href="/packages/{filename}#sha256={digest}">{filename}</a><br/>')
            entries.append({"filename": filename, "url": f"/packages/{filename}", "hashes": {"sha256": digest}})
        with open(os.path.join(page_dir, "index.html"), "w") as f:
            f.write("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\"></head><body>\n"
                    + "\n".join(links) + "\n</body></html>\n")
        with open(os.path.join(page_dir, "index.json"), "w") as f:
            json.dump({"meta": {"api-version": "1.0"}, "name": project, "files": entries}, f)
    with open(os.path.join(outdir, "simple", "index.html"), "w") as f:
        f.write("<!DOCTYPE html>\n<html><body>\n"
                + "\n".join(f'<a href="/simple/{p}/">{p}</a><br/>' for p in projects) + "\n</body></html>\n")


if __name__ == "__main__":
    main()
