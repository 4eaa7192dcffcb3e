"""S3 with the call's keys against a server that checks them: moto with IAM authentication
on, two users whose policies allow only their own bucket. What the storage sees is the
access key of the call (moto's request recorder); refused keys are per-file failures."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from seproxy.storage import StorageCredentials, StorageElement
from tests.fixtures.servers import S3Server, signing_key, start_moto, stop_process
from tests.storage.helpers import make_config, se_tree

USERS = ("alice", "bobby")


@pytest.fixture(scope="module")
def s3_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, dict]]:
    """moto checking signatures and policies after the set-up requests: per user a key
    pair, an inline policy for its bucket only, and the bucket."""
    server = start_moto(tmp_path_factory.mktemp("moto-auth"), unauthenticated_actions=3 * 2 + 2)
    try:
        iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        keys = {}
        for user in USERS:
            iam.create_user(UserName=user)
            policy = {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{user}-bucket", f"arn:aws:s3:::{user}-bucket/*"]}]}
            iam.put_user_policy(UserName=user, PolicyName="own-bucket",
                                PolicyDocument=json.dumps(policy))
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        for user in USERS:
            boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                         aws_access_key_id=keys[user]["AccessKeyId"],
                         aws_secret_access_key=keys[user]["SecretAccessKey"]
                         ).create_bucket(Bucket=f"{user}-bucket")
        yield server, keys
    finally:
        assert server.proc is not None
        stop_process(server.proc)


def s3_se(server: S3Server, bucket: str, creds: StorageCredentials) -> StorageElement:
    section = server.section(bucket, Aws_access_key_id="", Aws_secret_access_key="",
                             Timeout="10", Retries="1")
    tree = se_tree("SE-S3A", {"S3": section}, AccessProtocols="s3", WriteProtocols="s3")
    return StorageElement("SE-S3A", config=make_config(tree), credentials=creds)


def creds_of(key: dict, secret: str | None = None) -> StorageCredentials:
    return StorageCredentials(s3_access_key=key["AccessKeyId"],
                              s3_secret_key=secret or key["SecretAccessKey"])


def test_the_call_s_keys_reach_the_storage_and_its_policy_decides(s3_auth, tmp_path: Path) -> None:
    server, keys = s3_auth
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(10_000))
    lfn = "/dirac/s3auth/f.bin"
    with server.recording() as recorded:
        mine = s3_se(server, "alice-bucket", creds_of(keys["alice"])).putFile({lfn: str(src)})
        theirs = s3_se(server, "bobby-bucket", creds_of(keys["alice"])).putFile({lfn: str(src)})
    assert mine["Value"]["Successful"] == {lfn: 10_000}, mine
    assert "AccessDenied" in theirs["Value"]["Failed"][lfn], theirs
    signed = {signing_key(entry) for entry in recorded() if "-bucket" in entry["url"]}
    assert signed == {keys["alice"]["AccessKeyId"]}  # the call's key, nobody else's
    body = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=keys["alice"]["AccessKeyId"],
                        aws_secret_access_key=keys["alice"]["SecretAccessKey"]
                        ).get_object(Bucket="alice-bucket", Key=lfn.lstrip("/"))["Body"].read()
    assert body == src.read_bytes()


def test_refused_keys_are_per_file_failures(s3_auth, tmp_path: Path) -> None:
    server, keys = s3_auth
    src = tmp_path / "f.bin"
    src.write_bytes(b"refused")
    lfn = "/dirac/s3auth/refused.bin"
    cases = {
        "wrong secret": (creds_of(keys["alice"], secret="not-the-secret"), "SignatureDoesNotMatch"),
        "unknown key": (StorageCredentials(s3_access_key="AKIAUNKNOWN000000000",
                                           s3_secret_key="whatever"), "InvalidAccessKeyId"),
    }
    for case, (creds, code) in cases.items():
        res = s3_se(server, "alice-bucket", creds).putFile({lfn: str(src)})
        assert res["OK"] and not res["Value"]["Successful"], (case, res)
        assert code in res["Value"]["Failed"][lfn], (case, res)
