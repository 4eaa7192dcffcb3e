"""The StorageElement facade: configuration resolution, access flags, plugin order, DIRAC errors."""

from __future__ import annotations

import errno
import sys
import textwrap
from pathlib import Path

import pytest

from seproxy.errors import StorageError
from seproxy.returnvalues import returnSingleResult
from seproxy.storage import StorageCredentials, StorageElement
from seproxy.storage.plugins import BUILTIN_PLUGINS, StorageBase, load_plugin
from tests.storage.helpers import VO, cfg_text, file_section, make_config, se_tree


def file_se(root: Path, name: str = "SE-A", **options: object) -> StorageElement:
    opts = {"AccessProtocols": "file", "WriteProtocols": "file", **options}
    return StorageElement(
        name, config=make_config(se_tree(name, {"File": file_section(str(root))}, **opts))
    )


def test_argument_forms_and_bulk_convention(tmp_path: Path) -> None:
    (tmp_path / "dirac").mkdir()
    (tmp_path / "dirac" / "a").write_bytes(b"1")
    se = file_se(tmp_path)
    assert se.exists("/dirac/a")["Value"] == {"Failed": {}, "Successful": {"/dirac/a": True}}
    assert se.exists(["/dirac/a", "/dirac/b", 42])["Value"]["Successful"] == {
        "/dirac/a": True,
        "/dirac/b": False,
    }
    assert se.exists({"/dirac/a": "ignored"})["Value"]["Successful"] == {"/dirac/a": True}
    bad = se.exists(42)
    assert not bad["OK"] and bad["Errno"] == errno.EINVAL
    assert bad["Message"] == (
        "Invalid argument ( 22 : Utils.checkArgumentFormat: Supplied path "
        "is not of the correct format.)"
    )
    assert returnSingleResult(se.isFile("/dirac/missing"))["Message"] == "No such file or directory"
    empty = returnSingleResult(se.exists([]))
    assert empty["Message"] == "returnSingleResult: Failed and Successful dictionaries are empty"


def test_unknown_method_is_attribute_error(tmp_path: Path) -> None:
    se = file_se(tmp_path)
    with pytest.raises(
        AttributeError, match="StorageElement does not have a method 'deleteEverything'"
    ):
        se.deleteEverything  # noqa: B018
    with pytest.raises(AttributeError):
        se._StorageElement__secret  # noqa: B018


def test_public_methods_whitelist(tmp_path: Path) -> None:
    se = file_se(tmp_path)
    for name in StorageElement.PUBLIC_METHODS | StorageElement.TRANSFER_METHODS:
        assert callable(getattr(se, name)), name
    assert not StorageElement.PUBLIC_METHODS & StorageElement.TRANSFER_METHODS
    assert (
        "getFile" not in StorageElement.PUBLIC_METHODS
        and "putFile" not in StorageElement.PUBLIC_METHODS
    )


def test_information_methods(tmp_path: Path) -> None:
    se = file_se(tmp_path, SEType="T0D1", TotalCapacityTB="12.5")
    assert se.storageElementName() == "SE-A"
    assert se.getChecksumType()["Value"] == "ADLER32"
    assert se.getProtocolSections()["Value"] == ["File"]
    assert (
        se.getRemoteProtocolSections()["Value"] == ["File"]
        and se.getLocalProtocolSections()["Value"] == []
    )
    status = se.getStatus()["Value"]
    assert status == {
        "Read": True,
        "Write": True,
        "Remove": True,
        "Check": True,
        "DiskSE": True,
        "TapeSE": False,
        "TotalCapacityTB": 12.5,
        "DiskCacheTB": -1,
    }
    params = se.getStorageParameters(protocolSection="File")["Value"]
    assert params["PluginName"] == "File" and params["Path"] == str(tmp_path)
    assert params["URLBase"] == str(tmp_path) and params["StorageName"] == "SE-A"
    assert params["InputProtocols"] == ["file", "file"] and params["OutputProtocols"] == ["file"]
    assert se.getStorageParameters(protocol="file")["OK"]
    err = se.getStorageParameters(protocolSection="Nope")
    assert err["Errno"] == errno.ENOPROTOOPT
    assert se.getStorageParameters()["Errno"] == errno.EINVAL
    # DIRAC only maps URLs carrying the plugin's protocol back to LFNs (a bare File path does not)
    lfns = se.getLFNFromURL([f"file:{tmp_path}/dirac/x", f"{tmp_path}/dirac/x"])["Value"]
    assert lfns["Successful"] == {f"file:{tmp_path}/dirac/x": "/dirac/x"}
    assert lfns["Failed"] == {
        f"{tmp_path}/dirac/x": "Failed to get the url path for any of the protocols!!"
    }
    assert se.getURL("/dirac/x")["Value"]["Successful"] == {"/dirac/x": f"{tmp_path}/dirac/x"}


def test_access_flags(tmp_path: Path) -> None:
    se = file_se(tmp_path, ReadAccess="Banned", WriteAccess="Degraded", RemoveAccess="InActive")
    assert se.status()["Read"] is False and se.status()["Write"] is True
    assert se.status()["Check"] is True  # no CheckAccess option: allowed
    res = se.getFile("/dirac/x")
    assert not res["OK"] and res["Errno"] == errno.EACCES
    assert res["Message"].endswith("SE.isValid: Read access not currently permitted.)")
    assert not se.removeFile("/dirac/x")["OK"]
    assert se.exists("/dirac/x")["OK"]
    assert se.isValid("putFile")["OK"]
    unknown = se.isValid("frobnicate")
    assert unknown["Errno"] == 1002
    assert (
        unknown["Message"]
        == "No such method or function ( 1002 : SE.isValid: The supplied operation is not known.)"
    )


def test_vo_restriction(tmp_path: Path) -> None:
    se = file_se(tmp_path, VO="lhcb, belle")
    res = se.exists("/dirac/x")
    assert not res["OK"] and res["Message"].endswith(
        "StorageElement.isValid: StorageElement is not allowed for VO)"
    )


def test_missing_se_and_broken_plugin(tmp_path: Path) -> None:
    cfg = make_config(se_tree("SE-A", {"File": file_section(str(tmp_path))}))
    se = StorageElement("SE-NOPE", config=cfg)
    assert not se.valid
    assert se.exists("/dirac/x")["Message"] == (
        "SE.isValid: Failed to create StorageElement plugins: "
        "StorageFactory._getConfigStorageName: Failed to get storage options"
    )
    broken = make_config(
        se_tree(
            "SE-B",
            {"Bad": {"PluginName": "NoSuchPlugin", "Protocol": "x", "Access": "remote"}},
            BackendType="test",
        )
    )
    se = StorageElement("SE-B", config=broken)
    assert "Failed to instantiate any storage protocols" in se.getStatus()["Message"]
    sectionless = make_config(se_tree("SE-C", {"File": file_section(str(tmp_path))}))
    assert (
        "Supplied storage doesn't exist."
        in StorageElement("SE-C", config=sectionless).getStatus()["Message"]
    )


def test_alias_base_se_and_vo_path(tmp_path: Path) -> None:
    base_root, vo_root = tmp_path / "base", tmp_path / "vo"
    tree = {
        "DIRAC": {"VirtualOrganization": VO},
        "Resources": {
            "StorageElementBases": {
                "BASE": {
                    "AccessProtocols": "file",
                    "WriteProtocols": "file",
                    "SEType": "T1D0",
                    "File": file_section(str(base_root)),
                },
            },
            "StorageElements": {
                "DERIVED": {
                    "BaseSE": "BASE",
                    "SEType": "T0D1",
                    "File": {"VOPath": {VO: str(vo_root)}},
                },
                "ALIAS": {"Alias": "DERIVED"},
            },
        },
    }
    se = StorageElement("ALIAS", config=make_config(tree))
    assert se.valid, se.errorReason
    assert se.storageElementName() == "DERIVED"
    assert se.status()["DiskSE"] and not se.status()["TapeSE"]  # derived option wins
    assert se.getStorageParameters(protocolSection="File")["Value"]["Path"] == str(vo_root)
    assert se.getURL("/dirac/f")["Value"]["Successful"]["/dirac/f"] == f"{vo_root}/dirac/f"


def test_plugin_order_fallback_and_joined_failures(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (second / "dirac").mkdir(parents=True)
    (second / "dirac" / "only-in-second").write_bytes(b"2")
    sections = {"A": file_section(str(first)), "B": file_section(str(second))}
    se = StorageElement(
        "SE-2", config=make_config(se_tree("SE-2", sections, AccessProtocols="file"))
    )
    res = se.getFileSize(["/dirac/only-in-second", "/dirac/nowhere"])["Value"]
    assert res["Successful"] == {"/dirac/only-in-second": 1}
    reason = res["Failed"]["/dirac/nowhere"]
    assert reason == (
        f"[Errno 2] No such file or directory: '{first}/dirac/nowhere' "
        f"[Errno 2] No such file or directory: '{second}/dirac/nowhere'"
    )


def test_no_plugin_matches(tmp_path: Path) -> None:
    se = file_se(tmp_path, AccessProtocols="srm", WriteProtocols="srm")
    res = se.exists("/dirac/x")
    assert not res["OK"] and res["Errno"] == errno.EPROTONOSUPPORT
    assert "No storage plugins matching the requirements" in res["Message"]
    assert "(operation exists protocols None inputProtocol None)" in res["Message"]


def test_local_sections_need_the_local_site(tmp_path: Path) -> None:
    section = file_section(str(tmp_path), Access="local")
    tree = se_tree("SE-L", {"File": section}, AccessProtocols="file", WriteProtocols="file")
    assert not StorageElement("SE-L", config=make_config(tree)).exists("/dirac/x")["OK"]
    tree["LocalSite"] = {"Site": "LCG.Test.org"}
    tree["Resources"]["Sites"] = {"LCG": {"LCG.Test.org": {"SE": "SE-L"}}}
    se = StorageElement("SE-L", config=make_config(tree))
    assert se.exists("/dirac/x")["Value"]["Successful"] == {"/dirac/x": False}


def test_credentials_and_vo_from_credentials(tmp_path: Path) -> None:
    tree = se_tree("SE-A", {"File": file_section(str(tmp_path))}, AccessProtocols="file")
    creds = StorageCredentials(vo="lhcb", proxy_path="/tmp/x509up_u0")
    se = StorageElement("SE-A", config=make_config(tree), credentials=creds)
    assert se.vo == "lhcb" and se.storages["File"].credentials is creds
    res = se.exists("/dirac/x")["Value"]
    assert res["Failed"] == {"/dirac/x": "LFN (/dirac/x) path must start with VO name (lhcb)"}
    assert "secret" not in repr(StorageCredentials(s3_secret_key="secret"))


def test_builtin_plugins_load() -> None:
    for name in BUILTIN_PLUGINS:
        if name == "DIP":
            continue
        cls = load_plugin(name)
        assert issubclass(cls, StorageBase) and cls.pluginName == name
    with pytest.raises(StorageError, match="No storage plugin named 'Nope'"):
        load_plugin("Nope")


def test_entry_point_plugin_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site plugin shipped as its own distribution is found through its entry point."""
    (tmp_path / "siteplugin.py").write_text(
        textwrap.dedent("""
        from seproxy.storage.plugins import StorageBase

        class SiteStorage(StorageBase):
            pluginName = "Site"

            def _exists(self, url):
                return url.endswith("yes")
    """)
    )
    dist = tmp_path / "siteplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: siteplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[seproxy.storage_plugins]\nSite = siteplugin:SiteStorage\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = load_plugin("Site")
    assert cls.__name__ == "SiteStorage"
    section = {"PluginName": "Site", "Protocol": "site", "Access": "remote", "Path": "/base"}
    cfg = make_config(se_tree("SE-S", {"Site": section}, AccessProtocols="site"))
    se = StorageElement("SE-S", config=cfg)
    assert se.exists(["/dirac/yes", "/dirac/no"])["Value"]["Successful"] == {
        "/dirac/yes": True,
        "/dirac/no": False,
    }
    assert se.isFile("/dirac/yes")["Value"]["Failed"] == {
        "/dirac/yes": "Storage.isFile: implement me!"
    }
    sys.modules.pop("siteplugin", None)


def test_cfg_text_helper_round_trip() -> None:
    text = cfg_text({"A": {"B": "1", "L": ["x", "y"], "S": {"C": "2"}}})
    cfg = make_config({"A": {"B": "1", "L": ["x", "y"], "S": {"C": "2"}}})
    assert (
        "A\n{" in text
        and cfg.getValue("/A/L", []) == ["x", "y"]
        and cfg.getValue("/A/S/C", "") == "2"
    )


def test_protocol_sections_argument_restricts_plugins(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    sections = {"A": file_section(str(first)), "B": file_section(str(second))}
    cfg = make_config(se_tree("SE-2", sections, AccessProtocols="file", WriteProtocols="file"))
    se = StorageElement("SE-2", protocolSections=["B"], config=cfg)
    assert se.getProtocolSections()["Value"] == ["B"]
    assert se.getURL("/dirac/f")["Value"]["Successful"] == {"/dirac/f": f"{second}/dirac/f"}
    assert StorageElement("SE-2", protocolSections="A", config=cfg).getProtocolSections()[
        "Value"
    ] == ["A"]


@pytest.mark.parametrize(("checksum", "dirac_text"), [
    ("00000001", "000001"),  # the empty file, as DIRAC's File plugin reports it
    ("00000abc", "00000abc"), ("0001abcd", "0001abcd"), ("fffffff1", "fffffff1"),
])
def test_file_metadata_checksum_is_dirac_text(checksum: str, dirac_text: str) -> None:
    from seproxy.localfs import dirac_adler_text

    assert dirac_adler_text(checksum) == dirac_text
