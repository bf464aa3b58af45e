#!/usr/bin/env python3
"""Regenerates sigv4-vectors.json: requests signed by botocore's own S3 client at a fixed time.

Run once by hand (`python3 make_sigv4_vectors.py > sigv4-vectors.json`); the JSON is committed and
the Swift signer must reproduce every Authorization header byte for byte. No network is used: a
`before-send` hook captures each signed request and answers it locally.
"""
import datetime
import json
import sys
from unittest import mock
from urllib.parse import urlsplit, parse_qsl

import botocore.auth
import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config

FIXED = datetime.datetime(2026, 11, 21, 12, 34, 56, tzinfo=datetime.timezone.utc)
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLETOKEN+/="

CASES = [
    # (name, endpoint, addressing, session token?, operation, params)
    ("get-plain", "http://127.0.0.1:5055", "path", False, "get_object", {"Bucket": "cache", "Key": "data/a/b/c/d/abcd0123"}),
    ("get-range", "http://127.0.0.1:5055", "path", False, "get_object", {"Bucket": "cache", "Key": "data/x", "Range": "bytes=1000-1999"}),
    ("get-space", "http://127.0.0.1:5055", "path", False, "get_object", {"Bucket": "cache", "Key": "dir with space/file name.txt"}),
    ("get-plus-equals", "http://127.0.0.1:5055", "path", False, "get_object", {"Bucket": "cache", "Key": "a+b=c&d(e)!f*g'h"}),
    ("get-utf8", "http://127.0.0.1:5055", "path", False, "get_object", {"Bucket": "cache", "Key": "ünïcødé/日本語/файл"}),
    ("get-tilde-dots", "http://127.0.0.1:5055", "path", False, "get_object", {"Bucket": "cache", "Key": "~user/./a..b/%41"}),
    ("head-token", "http://127.0.0.1:5055", "path", True, "head_object", {"Bucket": "cache", "Key": "data/0/1/2/3/0123"}),
    ("put-empty", "http://127.0.0.1:5055", "path", False, "put_object", {"Bucket": "cache", "Key": "empty", "Body": b""}),
    ("put-body", "http://127.0.0.1:5055", "path", False, "put_object", {"Bucket": "cache", "Key": "k/v", "Body": b"hello, world\n"}),
    ("list-prefix", "http://127.0.0.1:5055", "path", False, "list_objects_v2", {"Bucket": "cache", "Prefix": "dir with space/sub/", "MaxKeys": 7, "ContinuationToken": "tok+en/=="}),
    ("create-multipart", "http://127.0.0.1:5055", "path", False, "create_multipart_upload", {"Bucket": "cache", "Key": "big object"}),
    ("upload-part", "http://127.0.0.1:5055", "path", False, "upload_part", {"Bucket": "cache", "Key": "big object", "UploadId": "VXBsb2FkIElE+/==", "PartNumber": 3, "Body": b"part-bytes"}),
    ("abort-multipart", "http://127.0.0.1:5055", "path", False, "abort_multipart_upload", {"Bucket": "cache", "Key": "big+object", "UploadId": "a/b+c=="}),
    ("head-bucket-virtual", "https://s3.eu-west-1.amazonaws.com", "virtual", True, "head_bucket", {"Bucket": "my-cache-bucket"}),
    ("get-virtual", "https://s3.eu-west-1.amazonaws.com", "virtual", False, "get_object", {"Bucket": "my-cache-bucket", "Key": "data/f/0/0/d/f00d"}),
]


def main():
    out = []
    for name, endpoint, addressing, with_token, operation, params in CASES:
        captured = {}

        def before_send(request, **_):
            captured["request"] = request
            body = b"<?xml version=\"1.0\"?><R/>"
            return AWSResponse(request.url, 200, {}, mock.Mock(content=body, stream=lambda **_: iter([body])))

        session = botocore.session.get_session()
        region = "eu-west-1" if "eu-west-1" in endpoint else "us-east-1"
        client = session.create_client(
            "s3", region_name=region, endpoint_url=endpoint if addressing == "path" else None,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            aws_session_token=TOKEN if with_token else None,
            config=Config(s3={"addressing_style": addressing}, signature_version="s3v4",
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))
        client.meta.events.register("before-send.s3", before_send)
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=FIXED.replace(tzinfo=None)):
            try:
                getattr(client, operation)(**params)
            except Exception:
                pass  # the fake response may not parse; the signed request is what we keep
        request = captured["request"]
        headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        authorization = headers["authorization"]
        signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        split = urlsplit(request.url)
        out.append({
            "name": name,
            "method": request.method,
            "region": region,
            "sessionToken": TOKEN if with_token else None,
            "bucket": params["Bucket"],
            "key": params.get("Key"),
            "host": split.netloc,
            "path": split.path,
            "query": [[k, v] for k, v in parse_qsl(split.query, keep_blank_values=True)],
            "rawQuery": split.query,
            "signedHeaders": {h: headers.get(h, split.netloc if h == "host" else None) for h in signed},
            "authorization": authorization,
        })
    out = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY, "date": FIXED.strftime("%Y%m%dT%H%M%SZ"),
           "botocore": botocore.__version__, "vectors": out}
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
