"""What only a blob container can do wrong: faults on the wire, credentials, foreign blobs."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from himl_tasks.errors import (
    ChecksumMismatchError,
    ContainerNotFoundError,
    InvalidInputError,
    StorageAccessError,
    TransferFailedError,
    UnsafeBlobNameError,
)
from himl_tasks.storage import BlobDatastore
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite, connection_string, random_account_key
from tests.conftest import FAST_RETRY, TEST_BLOCK_SIZE, read_tree, write_tree
from tests.faulty_proxy import FaultyProxy

BIG = os.urandom(3 * TEST_BLOCK_SIZE + 777)


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultyProxy]:
    with FaultyProxy(azurite.host, azurite.port) as running:
        yield running


@pytest.fixture
def proxied_store(
    proxy: FaultyProxy, container: ContainerClient, azurite: Azurite
) -> BlobDatastore:
    """The test's container, reached through the fault-injecting proxy."""
    return BlobDatastore.with_account_key(
        f"http://127.0.0.1:{proxy.port}/{ACCOUNT_NAME}",
        container.container_name,
        ACCOUNT_NAME,
        azurite.account_key,
        block_size=TEST_BLOCK_SIZE,
        retry=FAST_RETRY,
    )


def sas_for(azurite: Azurite, container: ContainerClient, **permissions: bool) -> str:
    return generate_container_sas(
        ACCOUNT_NAME,
        container.container_name,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(**permissions),
        expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
    )


# ---- transient faults are retried; what cannot complete leaves nothing behind ---------------


@pytest.mark.parametrize("fault", ["503", "reset", "truncate"])
def test_transient_faults_are_retried_until_the_transfer_completes(
    proxied_store: BlobDatastore, proxy: FaultyProxy, tmp_path: Path, fault: str
) -> None:
    files = {"small.txt": b"small", "big.bin": BIG}
    proxied_store.upload_folder(write_tree(tmp_path / "src", files), "d")
    proxy.fail_next(2, fault)  # type: ignore[arg-type]

    proxied_store.download("d/", tmp_path / "out", validate_checksum=True)

    assert proxy.pending_faults == 0
    assert read_tree(tmp_path / "out") == {f"d/{k}": v for k, v in files.items()}


def test_an_interrupted_download_leaves_no_truncated_file(
    proxied_store: BlobDatastore, proxy: FaultyProxy, tmp_path: Path
) -> None:
    proxied_store.upload_folder(write_tree(tmp_path / "src", {"big.bin": BIG}), "d")
    proxy.fail_next(100, "truncate")

    with pytest.raises(TransferFailedError, match=r"failed 4 times") as raised:
        proxied_store.download("d/", tmp_path / "out")

    assert "sig=" not in str(raised.value)
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_bytes_corrupted_in_transit_fail_validation_and_write_nothing(
    proxied_store: BlobDatastore, proxy: FaultyProxy, tmp_path: Path
) -> None:
    proxied_store.upload_folder(write_tree(tmp_path / "src", {"a.bin": BIG[:1000]}), "d")
    proxy.fail_next(1, "none")  # the listing
    proxy.fail_next(1, "corrupt")  # the file's bytes

    with pytest.raises(ChecksumMismatchError, match=r"'d/a\.bin'"):
        proxied_store.download("d/", tmp_path / "out", validate_checksum=True)

    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_a_corrupted_listing_is_an_error_not_a_crash(
    proxied_store: BlobDatastore, proxy: FaultyProxy, tmp_path: Path
) -> None:
    proxied_store.upload_folder(write_tree(tmp_path / "src", {"a.bin": b"a" * 500}), "d")
    proxy.fail_next(1, "corrupt")

    with pytest.raises(TransferFailedError, match="malformed XML"):
        proxied_store.download("d/", tmp_path / "out")


def test_corruption_in_one_range_of_a_big_file_fails_validation(
    proxied_store: BlobDatastore, proxy: FaultyProxy, tmp_path: Path, container: ContainerClient
) -> None:
    container.get_blob_client("d/big.bin").upload_blob(BIG)
    proxy.fail_next(1, "none")  # the listing
    proxy.fail_next(1, "corrupt")  # the first range

    with pytest.raises(ChecksumMismatchError, match=r"'d/big\.bin'"):
        proxied_store.download("d/", tmp_path / "out", validate_checksum=True)

    assert list((tmp_path / "out").rglob("*.bin")) == []


# ---- blobs written by others -----------------------------------------------------------


def test_blobs_without_md5_are_downloaded_and_reported_unverified(
    blob_store: BlobDatastore, container: ContainerClient, tmp_path: Path
) -> None:
    blob = container.get_blob_client("foreign/blocks.bin")
    blob.stage_block("b0", b"part one ")
    blob.stage_block("b1", b"part two")
    blob.commit_block_list(["b0", "b1"])
    container.upload_blob("foreign/with-md5.txt", b"checked")

    report = blob_store.download("foreign/", tmp_path / "out", validate_checksum=True)

    assert report.files == 2
    assert report.unverified == ["foreign/blocks.bin"]
    assert (tmp_path / "out/foreign/blocks.bin").read_bytes() == b"part one part two"


# Names Azurite stores as given; '..' and '.' segments it refuses itself (see test_names.py).
@pytest.mark.parametrize("name", ["evil//x", "/abs", "C:/x"])
def test_blob_names_that_would_escape_the_output_folder_are_refused(
    blob_store: BlobDatastore, container: ContainerClient, tmp_path: Path, name: str
) -> None:
    container.upload_blob("evil/fine.txt", b"fine")
    container.upload_blob(name, b"payload")
    assert name in [f.name for f in blob_store.list()]

    with pytest.raises(UnsafeBlobNameError, match="outside the folder"):
        blob_store.download("", tmp_path / "out" / "inner")

    assert not (tmp_path / "out").exists()


# ---- credentials and containers --------------------------------------------------------


def test_a_missing_container_fails_at_once_naming_it(azurite: Azurite, tmp_path: Path) -> None:
    store = BlobDatastore.from_connection_string(
        azurite.connection_string, "no-such-container", name="images", retry=FAST_RETRY
    )
    with pytest.raises(ContainerNotFoundError, match="datastore 'images'.*'no-such-container'"):
        store.upload_folder(write_tree(tmp_path / "s", {"a": b"a"}), "d")
    with pytest.raises(ContainerNotFoundError):
        store.download("d", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_wrong_account_key_is_refused_and_never_shown(
    azurite: Azurite, container: ContainerClient, tmp_path: Path
) -> None:
    wrong_key = random_account_key()
    store = BlobDatastore.with_account_key(
        azurite.account_url, container.container_name, ACCOUNT_NAME, wrong_key, name="images"
    )

    with pytest.raises(StorageAccessError, match="datastore 'images'.*refused") as raised:
        store.upload_folder(write_tree(tmp_path / "s", {"a": b"a"}), "d")

    text = f"{raised.value} {raised.value!r} {store!r}"
    assert wrong_key not in text
    assert "sig=" not in text
    assert raised.value.__cause__ is None and raised.value.__context__ is None


def test_an_account_key_signs_each_request_and_never_puts_a_secret_in_a_url(
    proxied_store: BlobDatastore, proxy: FaultyProxy, azurite: Azurite, tmp_path: Path
) -> None:
    files = {"small.txt": b"small", "big.bin": BIG}
    proxied_store.upload_folder(write_tree(tmp_path / "src", files), "d")
    proxied_store.download("d/", tmp_path / "out", validate_checksum=True)
    proxied_store.delete("d/")

    request_lines = [head.split(b"\r\n")[0].decode() for head in proxy.request_heads]
    assert len(request_lines) >= 8  # list, put, blocks, block list, list, get ranges, deletes
    assert not [line for line in request_lines if "sig=" in line or "se=" in line]
    assert all(b"\r\nAuthorization: SharedKey himltest:" in head for head in proxy.request_heads)
    assert not [head for head in proxy.request_heads if azurite.account_key.encode() in head]
    # Bytes must arrive as stored for their MD5 to match: no compressed encoding is asked for.
    assert not [head for head in proxy.request_heads if b"accept-encoding" in head.lower()]


def test_an_account_key_that_is_not_base64_is_rejected_without_echoing_it() -> None:
    not_a_key = "this is not base64!"
    with pytest.raises(InvalidInputError, match="account key of storage account 'acct'") as raised:
        BlobDatastore.with_account_key("https://acct.blob.core.windows.net", "c", "acct", not_a_key)
    assert not_a_key not in str(raised.value)


def test_a_sas_reaches_blobs_with_spaces_unicode_and_url_characters(
    azurite: Azurite, container: ContainerClient, tmp_path: Path
) -> None:
    sas = sas_for(azurite, container, read=True, write=True, create=True, list=True, delete=True)
    store = BlobDatastore.with_sas_token(azurite.account_url, container.container_name, sas)
    files = {"a b.txt": b"1", "ünï/ç.txt": b"2", "p+e=a&.txt": b"3", "pc%20#?.txt": b"4"}

    store.upload_folder(write_tree(tmp_path / "src", files), "x y")
    store.download("x y/", tmp_path / "out", validate_checksum=True)

    assert read_tree(tmp_path / "out") == {f"x y/{k}": v for k, v in files.items()}
    assert store.delete("x y/").files == len(files)


def test_a_read_only_sas_can_download_but_not_upload(
    azurite: Azurite, blob_store: BlobDatastore, container: ContainerClient, tmp_path: Path
) -> None:
    blob_store.upload_folder(write_tree(tmp_path / "s", {"a.txt": b"a"}), "d")
    sas = sas_for(azurite, container, read=True, list=True)
    reader = BlobDatastore.with_sas_token(azurite.account_url, container.container_name, sas)

    reader.download("d/", tmp_path / "out")
    with pytest.raises(StorageAccessError, match="HTTP 403") as raised:
        reader.upload_folder(write_tree(tmp_path / "s2", {"b.txt": b"b"}), "d")

    assert (tmp_path / "out/d/a.txt").read_bytes() == b"a"
    assert sas not in str(raised.value) and sas not in repr(reader)
    assert [f.name for f in blob_store.list()] == ["d/a.txt"]


def test_connection_strings_without_a_credential_are_rejected_without_echoing_them() -> None:
    secretish = "DefaultEndpointsProtocol=https;AccountName=acct;EndpointSuffix=core.windows.net"
    with pytest.raises(InvalidInputError, match="neither AccountName with AccountKey") as raised:
        BlobDatastore.from_connection_string(secretish, "c")
    assert "acct" not in str(raised.value)


def test_connection_string_builds_the_public_endpoint_from_the_account_name() -> None:
    key = random_account_key()
    fields = {"DefaultEndpointsProtocol": "https", "AccountName": "acct", "AccountKey": key}
    store = BlobDatastore.from_connection_string(
        connection_string({**fields, "EndpointSuffix": "core.windows.net"}), "images"
    )
    assert store.account_url == "https://acct.blob.core.windows.net"
    assert key not in repr(store)
