"""A local S3-compatible object store for tests: moto's server on a free loopback port.

``object_store`` (session) starts it once and makes one bucket; ``media_env`` (per test) gives the
environment that points Wan Studio at a fresh prefix of that bucket. Every object a test writes
is under its own prefix, so tests never see each other's frames and videos.

Two things S3, MinIO and R2 do that moto (5.x) does not are added in front of it, so the tests
see what production would: a presigned URL past its lifetime (``X-Amz-Date`` plus
``X-Amz-Expires`` in the past) is refused with 403 ``AccessDenied``; and a conditional put
(``If-None-Match: *``) is atomic. moto checks the condition, then writes, without a lock, so two
racing puts of one name could both pass; here such puts are taken one at a time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest

BUCKET = "wan-studio-test"
# Credentials moto accepts; nothing here reaches a real account.
_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "wan-studio-test-access",
    "AWS_SECRET_ACCESS_KEY": "wan-studio-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)


class _LikeS3:
    """WSGI middleware: expired presigned requests get 403; conditional puts run one at a time."""

    def __init__(self, app: Callable[..., Iterable[bytes]], reads: list[PresignedRead]) -> None:
        self.app = app
        self.reads = reads
        self._conditional_puts = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        if environ.get("REQUEST_METHOD") == "PUT" and environ.get("HTTP_IF_NONE_MATCH") == "*":
            with self._conditional_puts:
                # The whole answer is made inside the lock: moto writes while it answers.
                return list(self._answer(environ, start_response))
        return self._answer(environ, start_response)

    def _answer(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        signed_at, lifetime = query.get("X-Amz-Date"), query.get("X-Amz-Expires")
        if signed_at and lifetime:
            self.reads.append(
                PresignedRead(
                    path=environ.get("PATH_INFO", ""),
                    lifetime=int(lifetime[0]),
                    user_agent=environ.get("HTTP_USER_AGENT", ""),
                )
            )
            start = datetime.strptime(signed_at[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if datetime.now(UTC) > start + timedelta(seconds=int(lifetime[0])):
                start_response(
                    "403 Forbidden",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(_EXPIRED)))],
                )
                return [_EXPIRED]
        return self.app(environ, start_response)


@dataclass(frozen=True)
class PresignedRead:
    """One request the server got through a presigned URL: the path, the URL's lifetime in
    seconds and who asked (its User-Agent)."""

    path: str
    lifetime: int
    user_agent: str


@dataclass(frozen=True)
class ObjectStore:
    """A running local S3-compatible server and its test bucket.

    ``env`` holds what boto3 reads to reach it (endpoint and credentials); add
    ``WAN_STUDIO_MEDIA_URL`` (see ``media_url``) to point Wan Studio at the bucket.
    """

    endpoint_url: str
    bucket: str
    env: dict[str, str] = field(repr=False)
    # Every request made through a presigned URL, oldest first (for the whole session).
    presigned_reads: list[PresignedRead] = field(default_factory=list, repr=False)
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def media_url(self, prefix: str) -> str:
        """``s3://<bucket>/<prefix>`` for ``WAN_STUDIO_MEDIA_URL``."""
        return f"s3://{self.bucket}/{prefix}"

    def client(self, *, fresh: bool = False) -> Any:
        """A boto3 S3 client of this server (path-style, SigV4, as Wan Studio makes its own).

        One client is shared (they are thread-safe and slow to make); ``fresh`` makes a new one,
        for a test that plays several processes.
        """
        if not fresh and "client" in self._shared:
            return self._shared["client"]
        import boto3
        from botocore.config import Config

        client = boto3.session.Session(
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        ).client(
            "s3",
            endpoint_url=self.endpoint_url,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        if not fresh:
            self._shared["client"] = client
        return client

    def keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix/``, sorted."""
        answer = self.client().list_objects_v2(Bucket=self.bucket, Prefix=f"{prefix}/")
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def versions(self, key: str) -> int:
        """How many versions of one key the bucket holds (versioning is on: a rewrite shows)."""
        answer = self.client().list_object_versions(Bucket=self.bucket, Prefix=key)
        return sum(1 for version in answer.get("Versions", []) if version["Key"] == key)


@pytest.fixture(scope="session")
def object_store() -> Iterator[ObjectStore]:
    """moto's S3 server on a free 127.0.0.1 port with a versioned bucket, for the whole run."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    reads: list[PresignedRead] = []

    class _Server(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = _LikeS3(DomainDispatcherApplication(create_backend_app), reads)
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    server = _Server(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        **_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint,
        # No profile or config file of the machine's user changes what boto3 does here.
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    }
    store = ObjectStore(endpoint_url=endpoint, bucket=BUCKET, env=env, presigned_reads=reads)
    client = store.client()
    client.create_bucket(Bucket=BUCKET)
    # Versioned, so a second write of a name would show as a second version.
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    try:
        yield store
    finally:
        server.stop()


@pytest.fixture
def media_env(object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a Wan Studio whose media live under a fresh prefix of the test bucket.

    It is also set in this process's environment for the test (boto3 reads it from there), and
    ``WAN_STUDIO_MEDIA_PREFIX`` in the returned mapping names the prefix.
    """
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    env = {**object_store.env, "WAN_STUDIO_MEDIA_URL": object_store.media_url(prefix)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**env, "WAN_STUDIO_MEDIA_PREFIX": prefix}
