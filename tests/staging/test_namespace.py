"""fileID validation, per-caller namespaces, symlink-proof opening."""

from __future__ import annotations

import os

import pytest

from seproxy.errors import PathError
from seproxy.staging.namespace import (
    Namespace,
    check_name,
    namespace_id,
    open_dir,
    open_regular,
    parse_file_id,
)


@pytest.mark.parametrize("file_id", [
    "../x", "/etc/passwd", "getFile/../../x", "getFile/..", "putFile/.", "getFile/",
    "getFile/%2e%2e", "getFile/%2E%2E", "putFile/a%2fb", "putFile/%252e%252e",
    "getFile/a\x00b", "getFile/a/b", "getFile\\..\\x", "getFile/a\\b", "other/x", "x",
    "", "getFile/line\nbreak", 42, None, ["getFile", "x"],
])
def test_bad_file_ids_are_refused(file_id):
    with pytest.raises(PathError) as info:
        parse_file_id(file_id)
    assert "Invalid fileID" in str(info.value)


@pytest.mark.parametrize("file_id, expected", [
    ("getFile/data.root", ("getFile", "data.root")),
    ("putFile/file with spaces.txt", ("putFile", "file with spaces.txt")),
    ("putFile/été..dat", ("putFile", "été..dat")),
    ("getFile/..hidden", ("getFile", "..hidden")),
])
def test_good_file_ids(file_id, expected):
    assert parse_file_id(file_id) == expected


def test_long_name_refused():
    with pytest.raises(PathError):
        check_name("a" * 256)


def test_namespaces_differ_by_dn_and_group():
    a = namespace_id("/C=ch/CN=alice", "dirac_user")
    assert a == namespace_id("/C=ch/CN=alice", "dirac_user")
    assert a != namespace_id("/C=ch/CN=alice", "dirac_admin")
    assert a != namespace_id("/C=ch/CN=bob", "dirac_user")
    # no ambiguity from concatenation
    assert namespace_id("/CN=a", "bc") != namespace_id("/CN=ab", "c")


def test_namespace_requires_identity(tmp_path):
    with pytest.raises(PathError):
        Namespace(tmp_path, "", "g")


def test_symlinked_namespace_directory_is_refused(tmp_path):
    root = tmp_path / "ns"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    ns = Namespace(root, "/CN=alice", "g")
    (root / ns.id).symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathError):
        ns.dir_fd("putFile")
    assert list(outside.iterdir()) == []


def test_symlinked_file_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s")
    (tmp_path / "ns").mkdir()
    ns = Namespace(tmp_path / "ns", "/CN=alice", "g")
    directory = ns.directory("getFile")
    (directory / "f").symlink_to(secret)
    fd = ns.dir_fd("getFile")
    try:
        with pytest.raises(OSError):
            open_regular(fd, "f")
    finally:
        os.close(fd)


def test_open_dir_creates_private_directories(tmp_path):
    fd = open_dir(tmp_path, ("a", "b"), create=True)
    os.close(fd)
    assert (tmp_path / "a" / "b").is_dir()
    assert (tmp_path / "a").stat().st_mode & 0o077 == 0
