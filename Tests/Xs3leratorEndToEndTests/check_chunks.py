#!/usr/bin/env python3
"""Checks a key's manifest against the stored chunks.

Usage: check_chunks.py METADATA_SQLITE KEY exact|any|keys (OBJECT_DIR | ENDPOINT BUCKET ACCESS_KEY SECRET_KEY)
Prints `none` when the key has no manifest, else `ok <chunks>` when every chunk the manifest names
is stored under the SHA-256 of its content (v2 manifest, data/ prefix). With `exact`, the store
must hold nothing but those chunks; `keys` prints the manifest's chunk keys. Anything else exits 1 with the reason.
"""
import base64
import hashlib
import json
import os
import sqlite3
import struct
import sys

db, key, mode = sys.argv[1:4]
rows = sqlite3.connect(db).execute("SELECT fields FROM documents WHERE id = ?", (key,)).fetchall()
fields = json.loads(rows[0][0]) if rows else {}
encoded = fields.get("manifest_b64")
if not encoded:
    print("none")
    sys.exit(0)
raw = base64.b64decode(encoded)
magic, version, algorithm, chunk_size, total, count = struct.unpack("<4sBBQQI", raw[:26])
assert magic == b"XS3M" and version == 2 and algorithm == 1, (magic, version, algorithm)
ids = [raw[26 + 32 * i: 26 + 32 * (i + 1)].hex() for i in range(count)]
expected_keys = {f"data/{h[0]}/{h[1]}/{h[2]}/{h[3]}/{h}" for h in ids}
if mode == "keys":
    print("\n".join(sorted(expected_keys)))
    sys.exit(0)

if len(sys.argv) == 5:
    root = sys.argv[4]
    def read(k):
        with open(os.path.join(root, k), "rb") as f:
            return f.read()
    stored = set()
    for directory, _, files in os.walk(os.path.join(root, "data")):
        for name in files:
            stored.add(os.path.relpath(os.path.join(directory, name), root))
else:
    import boto3
    endpoint, bucket, access, secret = sys.argv[4:8]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access, aws_secret_access_key=secret)
    def read(k):
        return s3.get_object(Bucket=bucket, Key=k)["Body"].read()
    stored = set()
    # No Prefix: moto checks the signature of an encoded '/' in the query differently from boto3.
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        stored.update(o["Key"] for o in page.get("Contents", []) if o["Key"].startswith("data/"))

sizes = 0
for h in ids:
    k = f"data/{h[0]}/{h[1]}/{h[2]}/{h[3]}/{h}"
    if k not in stored:
        sys.exit(f"chunk {k} is missing")
    body = read(k)
    if hashlib.sha256(body).hexdigest() != h:
        sys.exit(f"chunk {k} does not hash to its name")
    sizes += len(body)
if sizes != total:
    sys.exit(f"chunks hold {sizes} bytes, the manifest says {total}")
if mode == "exact" and stored != expected_keys:
    sys.exit(f"the store holds {len(stored - expected_keys)} chunks the manifest does not name")
print(f"ok {count}")
