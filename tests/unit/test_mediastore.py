"""First frames and videos in object storage: a local S3-compatible server (moto), a simulator.

Each test has its own prefix of the session's bucket (``media_env``), so what it finds under that
prefix is what it wrote.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer

import simulator
from studio import cli
from studio.generation import InvalidRequest
from studio.mediastore import Bucket, BucketImageLibrary, BucketLocation, image_url_lifetime
from studio.records import Job, JobStatus
from studio.service import Studio
from studio.settings import Settings, SettingsError
from tests.plugins.engine import (
    CATALOG,
    ENGINE_KEY,
    FAST_POLICY,
    RequestLog,
    finished,
    quick_draft,
    settings_for,
    wait_until,
)
from tests.plugins.objectstore import ObjectStore

SIMULATOR_AGENT = "wan-gateway-simulator"


@pytest.fixture
def open_bucket_studio(
    tmp_path: Path, media_env: dict[str, str]
) -> Iterator[Callable[..., Studio]]:
    """Opens Studios on one data folder and database whose media live in the test's prefix."""
    opened: list[Studio] = []

    def open_one(*, base_url: str, start_watcher: bool = True) -> Studio:
        settings = replace(
            settings_for(tmp_path / "data", api_key=ENGINE_KEY, base_url=base_url),
            media_url=media_env["WAN_STUDIO_MEDIA_URL"],
        )
        studio = Studio.open(
            settings, catalog=CATALOG, poll_policy=FAST_POLICY, start_watcher=start_watcher
        )
        opened.append(studio)
        return studio

    yield open_one
    for studio in reversed(opened):
        studio.close()


def _submit(studio: Studio) -> Job:
    return studio.submit(quick_draft(), submission_id=str(uuid.uuid4()), session_id="s")


def _finished(studio: Studio, job: Job) -> Job:
    done = wait_until(finished(studio, job))
    assert done.status is JobStatus.SUCCEEDED, done.explanation
    return done


def test_frames_and_videos_live_in_the_bucket_and_the_gateway_reads_the_frame_from_it(
    open_bucket_studio: Callable[..., Studio],
    engine_gateway: simulator.RunningSimulator,
    object_store: ObjectStore,
    media_env: dict[str, str],
    store_of,
    monkeypatch: pytest.MonkeyPatch,
):
    prefix = media_env["WAN_STUDIO_MEDIA_PREFIX"]
    studio = open_bucket_studio(base_url=engine_gateway.url)
    # Whether the downloaded video was still on the disk when its upload started.
    on_disk_while_uploading: list[bool] = []
    bucket = studio._watcher._bucket
    put_once = bucket.put_once

    def put_once_noting_the_disk(name: str, body: bytes, **options: str) -> bool:
        if name.startswith("videos/"):
            on_disk_while_uploading.append((studio.settings.home / name).exists())
        return put_once(name, body, **options)

    monkeypatch.setattr(bucket, "put_once", put_once_noting_the_disk)
    draft = quick_draft()
    job = _finished(studio, _submit(studio))
    # Off the disk before the upload: a worker killed while uploading leaves no copy behind.
    assert on_disk_while_uploading == [False]

    frame = hashlib.sha256(draft.image.data).hexdigest()
    frame_key = f"{prefix}/images/{frame[:2]}/{frame}.jpg"
    video_key = f"{prefix}/videos/{job.id}.mp4"
    assert object_store.keys(prefix) == sorted([frame_key, video_key])
    # Not on this machine's disk: the download was moved to the bucket.
    assert not list((studio.settings.home / "videos").glob("*.mp4"))
    assert studio.video_file(job) is None

    # The simulator fetched the first frame through a presigned link that outlives the deadline.
    fetched = [
        read
        for read in object_store.presigned_reads
        if read.path.endswith(frame_key) and read.user_agent.startswith(SIMULATOR_AGENT)
    ]
    assert fetched, object_store.presigned_reads
    assert {read.lifetime for read in fetched} == {
        int(image_url_lifetime(studio.settings.job_deadline_minutes))
    }
    # The link, with its signature, is never kept with the job.
    recorded = store_of(studio).get_request_json(job.id)
    assert "X-Amz-Signature" not in recorded
    assert f"image:{frame}" in recorded

    link = studio.video_url(job, file_name="clip.mp4")
    assert link is not None
    assert link.startswith(object_store.endpoint_url)
    answer = requests.get(link, timeout=10)
    assert answer.status_code == 200
    assert answer.content[4:8] == b"ftyp"
    assert 'filename="clip.mp4"' in answer.headers.get("Content-Disposition", "")
    # The same link is handed out again on the next rerun, so a player keeps its source.
    assert studio.video_url(job, file_name="clip.mp4") == link


def test_a_local_copy_that_cannot_be_removed_does_not_stop_the_upload(
    open_bucket_studio: Callable[..., Studio],
    engine_gateway: simulator.RunningSimulator,
    object_store: ObjectStore,
    media_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    studio = open_bucket_studio(base_url=engine_gateway.url)
    unlink = Path.unlink

    def locked_videos(path: Path, missing_ok: bool = False) -> None:
        # A finished download that something else holds open (an indexer, an antivirus).
        if path.parent == studio.settings.home / "videos" and path.suffix == ".mp4":
            raise PermissionError(f"{path.name} is in use")
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", locked_videos)
    job = _finished(studio, _submit(studio))
    prefix = media_env["WAN_STUDIO_MEDIA_PREFIX"]
    assert f"{prefix}/videos/{job.id}.mp4" in object_store.keys(prefix)
    assert "could not remove the local copy of its video" in caplog.text


def test_a_second_worker_finishing_the_same_job_downloads_and_writes_nothing(
    open_bucket_studio: Callable[..., Studio],
    engine_gateway: simulator.RunningSimulator,
    object_store: ObjectStore,
    media_env: dict[str, str],
    request_log: RequestLog,
    store_of,
):
    first = open_bucket_studio(base_url=engine_gateway.url)
    job = _finished(first, _submit(first))
    downloads = request_log.count("/videos/")
    video_key = f"{media_env['WAN_STUDIO_MEDIA_PREFIX']}/videos/{job.id}.mp4"
    # As if the first worker's lease ran out after it wrote the video but before it said so.
    store_of(first).transition(
        job.id,
        expected=(JobStatus.SUCCEEDED,),
        status=JobStatus.DOWNLOADING,
        video_path=None,
        lease_owner=None,
        lease_until=None,
        next_poll_at=datetime.now(UTC),
    )
    second = open_bucket_studio(base_url=engine_gateway.url, start_watcher=False)
    assert second._watcher.run_until_idle(timeout=30)

    again = second.job(job.id)
    assert again.status is JobStatus.SUCCEEDED
    assert again.video_path == job.video_path
    assert again.cost_usd == job.cost_usd
    assert request_log.count("/videos/") == downloads
    assert object_store.versions(video_key) == 1
    assert second.totals(None).all_time.billed.videos == 1


def test_two_writers_racing_for_one_name_leave_one_copy(
    object_store: ObjectStore, media_env: dict[str, str]
):
    location = BucketLocation.parse(media_env["WAN_STUDIO_MEDIA_URL"])
    bodies = [bytes([index]) * 4096 for index in range(2)]
    clients = [object_store.client(fresh=True) for _ in range(2)]
    for attempt in range(5):
        name = f"videos/{attempt}.mp4"
        # Two processes' worth: each writer has its own client and knows nothing of the other.
        writers = [Bucket(location, client=client) for client in clients]
        start = threading.Barrier(2)
        wrote: list[bool | None] = [None, None]

        def write(
            index: int, name: str, writer: Bucket, start: threading.Barrier, wrote: list
        ) -> None:
            start.wait()
            wrote[index] = writer.put_once(name, bodies[index], content_type="video/mp4")

        threads = [
            threading.Thread(target=write, args=(index, name, writers[index], start, wrote))
            for index in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(wrote) == [False, True]
        assert object_store.versions(location.key(name)) == 1
        assert writers[0].read(name) == bodies[wrote.index(True)]


def test_a_presigned_link_past_its_lifetime_is_refused(
    object_store: ObjectStore, media_env: dict[str, str]
):
    bucket = Bucket(BucketLocation.parse(media_env["WAN_STUDIO_MEDIA_URL"]))
    bucket.put_once("videos/1.mp4", b"\x00" * 2048, content_type="video/mp4")
    link = bucket.url("videos/1.mp4", lifetime=1)
    assert requests.get(link, timeout=5).status_code == 200

    ends = time.monotonic() + 5
    while (answer := requests.get(link, timeout=5)).status_code == 200:
        assert time.monotonic() < ends, "the link still worked well past its lifetime"
        time.sleep(0.2)
    assert answer.status_code == 403
    assert "expired" in answer.text
    # Past its lifetime, a link is signed afresh rather than handed out again.
    fresh = bucket.url("videos/1.mp4", lifetime=1)
    assert fresh != link
    assert requests.get(fresh, timeout=5).status_code == 200


def test_a_refused_inline_first_frame_says_an_image_host_is_needed(
    open_studio: Callable[..., Studio], httpserver: HTTPServer
):
    httpserver.expect_request("/wan-i2v/v1/generateImageToVideoRequest").respond_with_json(
        {"error": "input.img_url must be a public http(s) URL"}, status=400
    )
    studio = open_studio(api_key=ENGINE_KEY, base_url=httpserver.url_for("").rstrip("/"))
    job = _submit(studio)

    assert job.status is JobStatus.REJECTED
    assert "image storage" in job.explanation
    assert "Nothing was billed." in job.explanation
    # Plain words for the person: no setting names, no URI schemes.
    ours = re.sub(r' \(the video service said: ".*"\)', "", job.explanation)
    assert "must be a public" in job.explanation  # the gateway's own words, quoted
    for word in ("WAN_STUDIO", "data:", "S3", "URL"):
        assert word not in ours


def test_other_refusals_of_an_inline_first_frame_are_said_as_before(
    open_studio: Callable[..., Studio], httpserver: HTTPServer
):
    httpserver.expect_request("/wan-i2v/v1/generateImageToVideoRequest").respond_with_json(
        {"error": "input.prompt is too long"}, status=400
    )
    studio = open_studio(api_key=ENGINE_KEY, base_url=httpserver.url_for("").rstrip("/"))
    job = _submit(studio)

    assert job.status is JobStatus.REJECTED
    assert "image storage" not in job.explanation


def test_the_media_url_setting_is_checked():
    assert Settings.from_environment({}).media_url is None
    given = Settings.from_environment({"WAN_STUDIO_MEDIA_URL": "s3://studio-media/team/a/"})
    assert given.media_url == "s3://studio-media/team/a"
    for wrong in ("studio-media/x", "s3://", "s3://Bad_Bucket/x", "https://studio-media"):
        with pytest.raises(SettingsError, match="WAN_STUDIO_MEDIA_URL"):
            Settings.from_environment({"WAN_STUDIO_MEDIA_URL": wrong})


def test_the_command_line_waits_and_prints_the_link_of_a_video_in_the_bucket(
    tmp_path: Path,
    media_env: dict[str, str],
    object_store: ObjectStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    for name in ("PIXAZO_API_KEY", "PIXAZO_BASE_URL", "WAN_STUDIO_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAN_STUDIO_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("WAN_STUDIO_DEMO_SPEED", "40")
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(quick_draft().image.data)
    quick = ["--model", "wan2.1-i2v-turbo", "--resolution", "480P", "--duration", "3"]

    code = cli.main(
        ["generate", "--image", str(frame), "--prompt", "a slow pan", *quick, "--wait"],
        poll_policy=FAST_POLICY,
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    link = printed.out.strip()
    assert link.startswith(f"{object_store.endpoint_url}/{object_store.bucket}/")
    assert requests.get(link, timeout=10).content[4:8] == b"ftyp"


def test_a_first_frame_saved_on_one_machine_is_read_on_another(
    tmp_path: Path, media_env: dict[str, str]
):
    bucket = Bucket(BucketLocation.parse(media_env["WAN_STUDIO_MEDIA_URL"]))
    frame = quick_draft().image
    sha256 = BucketImageLibrary(tmp_path / "here", bucket).save(frame.data, format="JPEG")

    elsewhere = BucketImageLibrary(tmp_path / "there", bucket)
    assert elsewhere.load(sha256) == frame.data
    assert elsewhere.thumbnail(sha256)[:3] == b"\xff\xd8\xff"


def test_a_bucket_that_cannot_be_written_refuses_the_job_in_plain_words_and_writes_nothing(
    tmp_path: Path, media_env: dict[str, str], engine_gateway: simulator.RunningSimulator
):
    settings = replace(
        settings_for(tmp_path / "data", api_key=ENGINE_KEY, base_url=engine_gateway.url),
        media_url="s3://no-such-bucket-here/team",
    )
    with Studio.open(settings, catalog=CATALOG, poll_policy=FAST_POLICY) as studio:
        draft = quick_draft()
        # A draft's image is still kept (on this machine), so the page goes on working.
        kept = studio.keep_image(draft.image.data, format="JPEG")
        assert studio.kept_image(kept) == draft.image.data

        with pytest.raises(InvalidRequest) as refused:
            _submit(studio)
        assert refused.value.problems[0].field == "image"
        assert "could not be stored" in refused.value.problems[0].message
        assert studio.history() == []
