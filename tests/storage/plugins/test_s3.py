"""S3 specifics: where credentials come from, multipart uploads, object metadata."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seproxy.storage import StorageCredentials, StorageElement
from tests.storage.helpers import make_config, se_tree


def s3_se(
    server, bucket: str, creds: StorageCredentials | None = None, **extra: str
) -> StorageElement:
    section = server.section(bucket, **extra)
    tree = se_tree("SE-S3", {"S3": section}, AccessProtocols="s3", WriteProtocols="s3")
    return StorageElement("SE-S3", config=make_config(tree), credentials=creds)


def access_key(se: StorageElement) -> str:
    return se.storages["S3"].s3_client._request_signer._credentials.access_key


def test_credentials_precedence(moto_s3, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = moto_s3.create_bucket("creds-bucket")
    assert access_key(s3_se(moto_s3, bucket)) == moto_s3.access_key  # from the section
    creds = StorageCredentials(s3_access_key="per-call", s3_secret_key="per-call-secret")
    assert access_key(s3_se(moto_s3, bucket, creds)) == "per-call"  # the call's wins
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env-secret")
    env_se = s3_se(moto_s3, bucket, Aws_access_key_id="", Aws_secret_access_key="")
    assert access_key(env_se) == "from-env"  # boto3's chain reads the variables
    assert env_se.exists("/dirac/x")["Value"]["Successful"] == {"/dirac/x": False}


def test_multipart_upload_and_metadata(moto_s3, tmp_path: Path) -> None:
    bucket = moto_s3.create_bucket("mp-bucket")
    se = s3_se(
        moto_s3,
        bucket,
        MultipartThreshold=str(5 * 1024 * 1024),
        MultipartChunkSize=str(5 * 1024 * 1024),
    )
    src = tmp_path / "mp.bin"
    src.write_bytes(os.urandom(11 * 1024 * 1024))
    lfn = "/dirac/mp/mp.bin"
    assert se.putFile({lfn: str(src)})["Value"]["Successful"] == {lfn: 11 * 1024 * 1024}
    head = moto_s3.client().head_object(Bucket=bucket, Key="dirac/mp/mp.bin")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: a real multipart upload
    meta = se.getFileMetadata(lfn)["Value"]["Successful"][lfn]
    assert meta["Checksum"] == head["Metadata"]["checksum"]
    url = se.getURL(lfn)["Value"]["Successful"][lfn]
    assert url == f"s3://{moto_s3.host}:{moto_s3.port}/{bucket}/dirac/mp/mp.bin"


def test_download_with_corrupted_checksum_is_refused(moto_s3, tmp_path: Path) -> None:
    bucket = moto_s3.create_bucket("cks-bucket")
    client = moto_s3.client()
    client.put_object(
        Bucket=bucket, Key="dirac/bad.bin", Body=b"payload", Metadata={"checksum": "00000001"}
    )
    se = s3_se(moto_s3, bucket)
    out = tmp_path / "out"
    out.mkdir()
    res = se.getFile("/dirac/bad.bin", localPath=str(out))["Value"]
    assert "Checksum mismatch" in res["Failed"]["/dirac/bad.bin"]
    assert os.listdir(out) == []  # nothing under the final name, no temporary file
