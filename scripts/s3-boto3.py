#!/usr/bin/env python3
"""boto3 against osprey's S3 API, requests spread over three nodes.

Usage: s3-boto3.py ENDPOINT1 ENDPOINT2 ENDPOINT3 LARGE_FILE
Credentials come from OSPREY_S3API_ACCESS_KEY / OSPREY_S3API_SECRET_KEY.
Exits non-zero on the first wrong answer.
"""
import hashlib
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.client import Config
from botocore.exceptions import ClientError


def client(endpoint, secret=None):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ["OSPREY_S3API_ACCESS_KEY"],
        aws_secret_access_key=secret or os.environ["OSPREY_S3API_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        if got != code:
            raise AssertionError(f"want {code}, got {got}") from e
        return
    raise AssertionError(f"want {code}, the call succeeded")


def main():
    e1, e2, e3, large = sys.argv[1:5]
    c1, c2, c3 = client(e1), client(e2), client(e3)
    b = "boto3-bucket"
    c1.create_bucket(Bucket=b)
    expect_error("BucketAlreadyOwnedByYou", c2.create_bucket, Bucket=b)

    body = os.urandom(10_000)
    put = c2.put_object(Bucket=b, Key="a/b.bin", Body=body, ContentType="application/x-test",
                        Metadata={"owner": "boto3"})
    assert put["ETag"].strip('"') == hashlib.md5(body).hexdigest(), put["ETag"]
    got = c3.get_object(Bucket=b, Key="a/b.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test", got["ContentType"]
    assert got["Metadata"].get("owner") == "boto3", got["Metadata"]
    head = c1.head_object(Bucket=b, Key="a/b.bin")
    assert head["ContentLength"] == len(body)
    part = c1.get_object(Bucket=b, Key="a/b.bin", Range="bytes=-100")
    assert part["Body"].read() == body[-100:] and part["ResponseMetadata"]["HTTPStatusCode"] == 206
    expect_error("InvalidRange", c1.get_object, Bucket=b, Key="a/b.bin", Range="bytes=20000-")
    expect_error("NoSuchKey", c3.get_object, Bucket=b, Key="missing")
    expect_error("NoSuchBucket", c3.list_objects_v2, Bucket="no-such-bucket")

    # Conditional GETs.
    etag = head["ETag"]
    expect_error("304", c2.get_object, Bucket=b, Key="a/b.bin", IfNoneMatch=etag)
    expect_error("PreconditionFailed", c2.get_object, Bucket=b, Key="a/b.bin", IfMatch='"0000"')

    # Overwrite: the new bytes, through any node.
    body2 = os.urandom(5_000)
    c1.put_object(Bucket=b, Key="a/b.bin", Body=body2)
    assert c3.get_object(Bucket=b, Key="a/b.bin")["Body"].read() == body2

    # Listing with a delimiter and pagination.
    for i in range(25):
        c1.put_object(Bucket=b, Key=f"list/{i:03d}", Body=b"x")
    c1.put_object(Bucket=b, Key="list/sub/1", Body=b"y")
    keys, prefixes, token = [], [], None
    while True:
        kw = {"Bucket": b, "Prefix": "list/", "Delimiter": "/", "MaxKeys": 7}
        if token:
            kw["ContinuationToken"] = token
        page = c2.list_objects_v2(**kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert keys == [f"list/{i:03d}" for i in range(25)], keys
    assert prefixes == ["list/sub/"], prefixes
    v1 = c3.list_objects(Bucket=b, Prefix="list/0", MaxKeys=1000)
    assert len(v1["Contents"]) == 25

    # Server-side copy with replaced metadata.
    c3.copy_object(Bucket=b, Key="copy.bin", CopySource={"Bucket": b, "Key": "a/b.bin"},
                   MetadataDirective="REPLACE", Metadata={"copied": "yes"})
    cp = c1.get_object(Bucket=b, Key="copy.bin")
    assert cp["Body"].read() == body2 and cp["Metadata"].get("copied") == "yes"

    # Multipart through the transfer manager (5 MiB parts), read back elsewhere.
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    c1.upload_file(large, b, "large.bin", Config=cfg)
    h = hashlib.md5()
    obj = c2.get_object(Bucket=b, Key="large.bin")
    for chunk in iter(lambda: obj["Body"].read(1 << 20), b""):
        h.update(chunk)
    with open(large, "rb") as f:
        want = hashlib.md5(f.read()).hexdigest()
    assert h.hexdigest() == want
    assert obj["ETag"].strip('"').endswith("-9"), obj["ETag"]

    # Multipart by hand: list uploads and parts, abort one, a too-small part.
    mp = c1.create_multipart_upload(Bucket=b, Key="manual.bin")
    uid = mp["UploadId"]
    p1 = c2.upload_part(Bucket=b, Key="manual.bin", UploadId=uid, PartNumber=1, Body=b"a" * 100)
    p2 = c3.upload_part(Bucket=b, Key="manual.bin", UploadId=uid, PartNumber=2, Body=b"b" * 100)
    ups = c1.list_multipart_uploads(Bucket=b)
    assert [u["UploadId"] for u in ups.get("Uploads", [])] == [uid], ups
    parts = c2.list_parts(Bucket=b, Key="manual.bin", UploadId=uid)
    assert [p["PartNumber"] for p in parts["Parts"]] == [1, 2]
    expect_error("EntityTooSmall", c3.complete_multipart_upload, Bucket=b, Key="manual.bin", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]},
                                            {"PartNumber": 2, "ETag": p2["ETag"]}]})
    c1.abort_multipart_upload(Bucket=b, Key="manual.bin", UploadId=uid)
    expect_error("NoSuchUpload", c2.list_parts, Bucket=b, Key="manual.bin", UploadId=uid)

    # Presigned GET (the host is signed, so it goes to the node it names).
    url = c1.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "copy.bin"}, ExpiresIn=60)
    import urllib.request
    with urllib.request.urlopen(url) as r:
        assert r.read() == body2

    # A wrong secret is refused.
    expect_error("SignatureDoesNotMatch", client(e1, secret="wrong").list_buckets)

    # Batch delete, then the bucket.
    expect_error("BucketNotEmpty", c1.delete_bucket, Bucket=b)
    while True:
        page = c1.list_objects_v2(Bucket=b)
        objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if not objs:
            break
        res = c2.delete_objects(Bucket=b, Delete={"Objects": objs, "Quiet": False})
        assert len(res.get("Deleted", [])) == len(objs), res
    c3.delete_bucket(Bucket=b)
    print("boto3: all operations passed")


if __name__ == "__main__":
    main()
