"""Azure AD (Entra) bearer tokens, against Azurite over HTTPS with OAuth turned on.

Entra ID itself cannot exist here, so the credential is a stand-in that issues tokens shaped
like Entra's (issuer, audience, lifetime); Azurite checks those claims as the service does,
but not the signature.
"""

from __future__ import annotations

import secrets
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.storage.blob import BlobServiceClient, ContainerClient

from himl_tasks.errors import StorageAccessError
from himl_tasks.storage import BlobDatastore
from himl_tasks.testing.azurite import Azurite, start_azurite, stop_azurite
from tests.conftest import FAST_RETRY, fresh_container, read_tree, write_tree
from tests.tls import write_self_signed_certificate

STORAGE_AUDIENCE = "https://storage.azure.com"


class EntraLikeCredential:
    """Issues JWTs with Entra's claims for the storage scope, and counts how often."""

    def __init__(self, lifetime: int = 3600, audience: str = STORAGE_AUDIENCE) -> None:
        self.lifetime = lifetime
        self.audience = audience
        self.issued: list[str] = []
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        now = int(time.time())
        claims = {
            "aud": self.audience,
            "iss": f"https://sts.windows.net/{uuid.uuid4()}/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + self.lifetime,
        }
        token = jwt.encode(claims, secrets.token_hex(32), algorithm="HS256")
        self.issued.append(token)
        self.scopes.append(scopes)
        return AccessToken(token, now + self.lifetime)


@pytest.fixture(scope="module")
def https_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Azurite, Path]]:
    """An Azurite of its own serving HTTPS with a throwaway certificate; yields it and the cert."""
    folder = tmp_path_factory.mktemp("azurite-https")
    cert, key = write_self_signed_certificate(folder)
    try:
        endpoint, process = start_azurite(folder / "data", tls=(cert, key))
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield endpoint, cert
    finally:
        stop_azurite(process)


@pytest.fixture
def https_container(https_azurite: tuple[Azurite, Path]) -> Iterator[ContainerClient]:
    endpoint, cert = https_azurite
    service = BlobServiceClient.from_connection_string(
        endpoint.connection_string, connection_verify=str(cert)
    )
    with fresh_container(service) as client:
        yield client


def token_store(
    https_azurite: tuple[Azurite, Path], container: ContainerClient, credential: object
) -> BlobDatastore:
    endpoint, cert = https_azurite
    return BlobDatastore.with_credential(
        endpoint.account_url,
        container.container_name,
        credential,  # type: ignore[arg-type]
        name="entra",
        retry=FAST_RETRY,
        ssl_context=ssl.create_default_context(cafile=str(cert)),
    )


def test_a_token_credential_uploads_and_downloads_with_one_token_for_many_requests(
    https_azurite: tuple[Azurite, Path], https_container: ContainerClient, tmp_path: Path
) -> None:
    credential = EntraLikeCredential()
    store = token_store(https_azurite, https_container, credential)
    files = {f"part-{i}.bin": secrets.token_bytes(100 + i) for i in range(20)}

    store.upload_folder(write_tree(tmp_path / "src", files), "data")
    report = store.download("data", tmp_path / "out", validate_checksum=True)

    assert read_tree(tmp_path / "out" / "data") == files
    assert report.files == 20 and report.unverified == []
    assert credential.scopes == [("https://storage.azure.com/.default",)]


def test_a_token_near_expiry_is_renewed_before_it_is_used(
    https_azurite: tuple[Azurite, Path], https_container: ContainerClient, tmp_path: Path
) -> None:
    credential = EntraLikeCredential(lifetime=120)  # inside the 5-minute renewal margin
    store = token_store(https_azurite, https_container, credential)

    store.upload_folder(write_tree(tmp_path / "src", {"a": b"a", "b": b"b"}), "d")

    assert len(credential.issued) >= 2
    assert sorted(f.name for f in store.list("d")) == ["d/a", "d/b"]


def test_a_token_for_another_audience_is_refused_and_never_shown(
    https_azurite: tuple[Azurite, Path], https_container: ContainerClient, tmp_path: Path
) -> None:
    credential = EntraLikeCredential(audience="https://management.azure.com")
    store = token_store(https_azurite, https_container, credential)

    with pytest.raises(StorageAccessError, match="datastore 'entra'.*refused") as raised:
        store.upload_folder(write_tree(tmp_path / "src", {"a": b"a"}), "d")

    text = f"{raised.value} {raised.value!r} {store!r}"
    assert credential.issued and all(token not in text for token in credential.issued)
    assert list(https_container.list_blobs()) == []


def test_an_untrusted_certificate_is_refused(
    https_azurite: tuple[Azurite, Path], https_container: ContainerClient, tmp_path: Path
) -> None:
    endpoint, _ = https_azurite
    store = BlobDatastore.with_credential(
        endpoint.account_url, https_container.container_name, EntraLikeCredential(),
        retry=FAST_RETRY,
    )  # fmt: skip

    with pytest.raises(StorageAccessError, match="certificate"):
        store.upload_folder(write_tree(tmp_path / "src", {"a": b"a"}), "d")
