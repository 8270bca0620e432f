"""First frames and videos in an S3-compatible bucket, for a team sharing one deployment.

Without ``WAN_STUDIO_MEDIA_URL`` nothing here is used: images and videos stay in the data folder
(`studio.images.ImageLibrary`, the watcher's ``videos`` folder). With it, they live in the bucket
under the same names the data folder uses, below the URL's prefix:

- ``<prefix>/images/<sha256[:2]>/<sha256>.<ext>``: a first frame, named by its content;
- ``<prefix>/videos/<job id>.mp4``: a job's video, named by the job (``Job.video_path``).

Every object is written once: a put carries ``If-None-Match: *``, so a second writer of the same
name (another worker finishing the same job after a lease ran out) changes nothing. Browsers and
the gateway read objects through short-lived presigned GET URLs, never through the app.

How to reach the bucket is boto3's own business: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION`` and, for MinIO, R2 or any other S3-compatible store, ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.images import FILE_EXTENSIONS, MIME_TYPES, ImageLibrary

if TYPE_CHECKING:
    from studio.images import PreparedImage

logger = logging.getLogger("studio.mediastore")

# A presigned URL for the browser lives this long; the same URL is handed out again for half of
# it, so a page that reruns every few seconds keeps one <video> source instead of reloading it.
PLAYBACK_URL_SECONDS = 15 * 60
# Signature Version 4 refuses presigned URLs meant to live longer than a week.
LONGEST_URL_SECONDS = 7 * 24 * 3600
# A first frame's URL outlives the job's deadline by this much: the gateway may read it late.
IMAGE_URL_MARGIN_SECONDS = 10 * 60
IMAGE_NOT_STORED = (
    "The first frame could not be stored where the video service reads it, so nothing was "
    "sent. Try again in a moment; if it keeps happening, tell whoever runs Wan Studio."
)
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
# A conditional put that lost: the name is taken (412), or another put of it is in progress (409).
_TAKEN = frozenset({"412", "PreconditionFailed"})
_BEING_WRITTEN = frozenset({"409", "ConditionalRequestConflict"})


class BucketError(OSError):
    """The bucket could not be read or written; its text says what failed, never a credential."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.EIO, what)


@dataclass(frozen=True)
class BucketLocation:
    """A bucket and the prefix (no slashes around it, maybe empty) of every name in it."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, media_url: str) -> BucketLocation:
        """``s3://bucket/some/prefix`` (as checked by the settings) into its two parts."""
        bucket, _, prefix = media_url.removeprefix("s3://").partition("/")
        return cls(bucket=bucket, prefix=prefix.strip("/"))

    def key(self, name: str) -> str:
        """The object key of a name relative to the prefix (``videos/12.mp4``)."""
        return f"{self.prefix}/{name}" if self.prefix else name


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class Bucket:
    """Write-once objects in one bucket under a prefix, read back or through presigned URLs.

    Parameters
    ----------
    location
        The bucket and prefix.
    client
        A boto3 S3 client; by default one made from the environment (``AWS_*`` variables).
    clock
        Seconds, monotonic, for how long a presigned URL is handed out again.
    """

    def __init__(
        self,
        location: BucketLocation,
        *,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.location = location
        self._client = client if client is not None else _client_from_environment()
        self._clock = clock
        # Names known to be in the bucket (objects never change once written).
        self._present: set[str] = set()
        self._urls: dict[tuple[str, str | None], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Bucket(bucket={self.location.bucket!r}, prefix={self.location.prefix!r})"

    def put_once(self, name: str, data: bytes, *, content_type: str) -> bool:
        """Write ``data`` under ``name`` unless something is there already.

        Returns
        -------
        bool
            True when this call wrote it, False when the name was taken (the object is kept as
            it was: a second writer never replaces or copies the first one's bytes).

        Raises
        ------
        BucketError
            If the bucket could not be written.
        """
        if name in self._present:
            return False
        try:
            self._client.put_object(
                Bucket=self.location.bucket,
                Key=self.location.key(name),
                Body=data,
                ContentType=content_type,
                IfNoneMatch="*",
            )
        except Exception as error:
            code = _error_code(error)
            if code in _TAKEN:
                self._present.add(name)
                return False
            if code in _BEING_WRITTEN:
                raise BucketError(f"{name} is being written by another process") from None
            raise BucketError(f"could not write {name} to the bucket ({_brief(error)})") from None
        self._present.add(name)
        return True

    def has(self, name: str) -> bool:
        """Whether an object of this name is in the bucket (raises ``BucketError`` if unsure)."""
        if name in self._present:
            return True
        try:
            self._client.head_object(Bucket=self.location.bucket, Key=self.location.key(name))
        except Exception as error:
            if _error_code(error) in _MISSING:
                return False
            raise BucketError(
                f"could not look for {name} in the bucket ({_brief(error)})"
            ) from None
        self._present.add(name)
        return True

    def read(self, name: str) -> bytes:
        """The object's bytes (``FileNotFoundError`` when there is none)."""
        try:
            answer = self._client.get_object(
                Bucket=self.location.bucket, Key=self.location.key(name)
            )
            return answer["Body"].read()
        except Exception as error:
            if _error_code(error) in _MISSING:
                raise FileNotFoundError(f"no {name} in the bucket") from None
            raise BucketError(f"could not read {name} from the bucket ({_brief(error)})") from None

    def names_starting(self, start: str) -> list[str]:
        """The names (relative to the prefix) of the objects whose name begins with ``start``."""
        key_start = self.location.key(start)
        strip = len(self.location.key(""))
        try:
            answer = self._client.list_objects_v2(
                Bucket=self.location.bucket, Prefix=key_start, MaxKeys=100
            )
        except Exception as error:
            raise BucketError(f"could not list the bucket ({_brief(error)})") from None
        return sorted(item["Key"][strip:] for item in answer.get("Contents", []))

    def url(self, name: str, *, lifetime: float, file_name: str | None = None) -> str:
        """A presigned GET URL of the object, valid ``lifetime`` seconds (at most a week).

        The same URL is handed out again while at least half its lifetime is left. With
        ``file_name``, a browser that opens it saves the object under that name.
        """
        lifetime = int(min(max(lifetime, 1), LONGEST_URL_SECONDS))
        now = self._clock()
        with self._lock:
            kept = self._urls.get((name, file_name))
            if kept is not None and kept[1] - now >= lifetime / 2:
                return kept[0]
        parameters = {"Bucket": self.location.bucket, "Key": self.location.key(name)}
        if file_name is not None:
            parameters["ResponseContentDisposition"] = f'attachment; filename="{file_name}"'
        url = self._client.generate_presigned_url(
            "get_object", Params=parameters, ExpiresIn=lifetime
        )
        with self._lock:
            if len(self._urls) > 1000:
                self._urls.clear()
            # Its lifetime counts from the whole second it was signed in, so up to a second less.
            self._urls[(name, file_name)] = (url, now + lifetime - 1)
        return url


def _brief(error: Exception) -> str:
    code = _error_code(error)
    return code or type(error).__name__


def _client_from_environment() -> Any:
    # Imported here: boto3 takes a while to import and only a team deployment needs it.
    import boto3
    from botocore.config import Config

    # Path-style addressing works with every S3-compatible store (MinIO, moto, R2); SigV4 is
    # what presigned URLs need everywhere.
    config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
    return boto3.session.Session().client("s3", config=config)


class BucketImageLibrary(ImageLibrary):
    """An `ImageLibrary` whose images live in the bucket; the data folder keeps a local copy.

    Saving writes the bucket (once) and the local copy; reading takes the local copy, fetched from
    the bucket first when this machine has none (an image another app process saved).
    """

    def __init__(self, root: Path, bucket: Bucket) -> None:
        super().__init__(root)
        self.bucket = bucket

    def name(self, path: Path) -> str:
        """An image file's name in the bucket: its path below the data folder."""
        return path.relative_to(self.root).as_posix()

    def save(self, data: bytes, *, format: str) -> str:
        """Keep the image here, and in the bucket when it can be reached (a draft's image:
        a bucket down for a moment must not break the page; sending writes it again)."""
        sha256 = super().save(data, format=format)
        try:
            self.save_to_bucket(sha256)
        except BucketError as error:
            logger.warning("image %s kept in the data folder only: %s", sha256[:12], error)
        return sha256

    def save_to_bucket(self, sha256: str) -> None:
        """Write a locally kept image to the bucket, once (raises ``BucketError``)."""
        path = super().path(sha256)
        self.bucket.put_once(self.name(path), path.read_bytes(), content_type=_content_type(path))

    def path(self, sha256: str) -> Path:
        try:
            return super().path(sha256)
        except FileNotFoundError:
            pass
        folder = self._folder(sha256)
        for name in self.bucket.names_starting(self.name(folder / f"{sha256}.")):
            data = self.bucket.read(name)
            local = self.root / name
            super().save(data, format=_EXTENSION_TO_FORMAT[local.suffix.lstrip(".")])
            return local
        raise FileNotFoundError(f"no stored image with hash {sha256}")

    def url(self, sha256: str, *, lifetime: float) -> str:
        """A presigned URL of the stored image (``FileNotFoundError`` if there is none)."""
        return self.bucket.url(self.name(self.path(sha256)), lifetime=lifetime)


_EXTENSION_TO_FORMAT = {extension: name for name, extension in FILE_EXTENSIONS.items()}


def _content_type(path: Path) -> str:
    return MIME_TYPES[_EXTENSION_TO_FORMAT[path.suffix.lstrip(".")]]


class PresignedImageHost:
    """Sends a first frame as a presigned GET URL of its copy in the bucket.

    ``lifetime`` covers the whole job: the gateway may read the image only when the task starts.
    """

    def __init__(self, library: BucketImageLibrary, *, lifetime: float) -> None:
        self.library = library
        self.lifetime = lifetime

    def url_for(self, image: PreparedImage) -> str:
        """The image's presigned URL; ``InvalidRequest`` when the bucket cannot take it (the
        job is then not written, nor sent)."""
        from studio.generation import FieldProblem, InvalidRequest

        sha256 = self.library.save(image.data, format=image.format)
        try:
            self.library.save_to_bucket(sha256)
        except BucketError as error:
            logger.warning("image %s could not be stored for the gateway: %s", sha256[:12], error)
            raise InvalidRequest([FieldProblem("image", IMAGE_NOT_STORED)]) from None
        return self.library.url(sha256, lifetime=self.lifetime)


def image_url_lifetime(job_deadline_minutes: float) -> float:
    """How long a first frame's URL lives: the job's deadline and a margin, at most a week."""
    return min(job_deadline_minutes * 60 + IMAGE_URL_MARGIN_SECONDS, LONGEST_URL_SECONDS)


def open_bucket(media_url: str | None) -> Bucket | None:
    """The bucket of ``WAN_STUDIO_MEDIA_URL``, or None when media stay in the data folder."""
    if not media_url:
        return None
    return Bucket(BucketLocation.parse(media_url))
