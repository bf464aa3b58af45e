#!/usr/bin/env python3
"""Prepares a fresh moto_server for the storage tests, then turns its signature checking on.

Usage: moto_setup.py ENDPOINT BUCKET
Creates an IAM user with full access and an access key, an IAM role for web identity, and the
bucket, all while moto still accepts unsigned calls; then POSTs /moto-api/reset-auth with 0 so
that every later request must carry a valid SigV4 signature. Prints the key, secret and role ARN
as JSON.
"""
import json
import sys
import urllib.request

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
common = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})

iam = boto3.client("iam", **common)
iam.create_user(UserName="passsage-tests")
iam.put_user_policy(UserName="passsage-tests", PolicyName="all", PolicyDocument=policy)
key = iam.create_access_key(UserName="passsage-tests")["AccessKey"]
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": "*"},
                                                           "Action": "sts:AssumeRoleWithWebIdentity"}]})
role = iam.create_role(RoleName="passsage-irsa", AssumeRolePolicyDocument=trust)["Role"]
iam.put_role_policy(RoleName="passsage-irsa", PolicyName="all", PolicyDocument=policy)
boto3.client("s3", **common).create_bucket(Bucket=bucket)
# A user that may read and list, but whose uploads are refused (S3 denying PutObject).
read_only = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:HeadObject", "s3:DeleteObject"], "Resource": "*"},
    {"Effect": "Deny", "Action": ["s3:PutObject"], "Resource": "*"}]})
iam.create_user(UserName="passsage-read-only")
iam.put_user_policy(UserName="passsage-read-only", PolicyName="read", PolicyDocument=read_only)
read_key = iam.create_access_key(UserName="passsage-read-only")["AccessKey"]

urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"})).read()
print(json.dumps({"accessKey": key["AccessKeyId"], "secretKey": key["SecretAccessKey"], "roleArn": role["Arn"],
                  "readOnlyAccessKey": read_key["AccessKeyId"], "readOnlySecretKey": read_key["SecretAccessKey"]}))
