"""A finished job whose video is in object storage plays in Chromium from a presigned link.

The job is made in demo mode by a Studio in this process with the bucket configured; then
``streamlit run app.py`` opens the same data folder and bucket, and History plays the job. The
player's source is the object store's own address: the video never passes through the app.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, expect

from studio.catalog import default_catalog
from studio.records import JobStatus
from studio.service import Studio
from studio.settings import Settings
from tests.e2e.test_browser import open_page
from tests.plugins.browser import APP, StreamlitServer, app_environment, app_workdir
from tests.plugins.engine import finished, quick_draft, wait_until
from tests.plugins.objectstore import ObjectStore

pytestmark = pytest.mark.browser

# The window a person looks at the finished job in.
VIEWPORT = {"width": 1440, "height": 900}
PROMPT = "A slow pan across the hills, from the bucket"


def _made_in_demo_mode(home: Path, media_env: dict[str, str]) -> int:
    settings = Settings.from_environment(
        {"WAN_STUDIO_HOME": str(home), "WAN_STUDIO_DEMO_SPEED": "50", **media_env}
    )
    with Studio.open(settings, catalog=default_catalog()) as studio:
        job = studio.submit(
            quick_draft(prompt=PROMPT), submission_id=str(uuid.uuid4()), session_id="maker"
        )
        done = wait_until(finished(studio, job))
    assert done.status is JobStatus.SUCCEEDED, done.explanation
    return done.id


def test_a_finished_job_plays_from_a_presigned_link_to_the_bucket(
    browser: Browser,
    tmp_path: Path,
    media_env: dict[str, str],
    object_store: ObjectStore,
    screenshot_dir: Path,
) -> None:
    home = tmp_path / "studio-home"
    job_id = _made_in_demo_mode(home, media_env)
    server = StreamlitServer(
        script=APP,
        workdir=app_workdir(tmp_path),
        env=app_environment(home=home) | media_env,
        log_path=tmp_path / "streamlit.log",
    )
    try:
        server.wait_healthy()
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)
        page = context.new_page()
        page.goto(server.url)
        # Once History's first run is over: a run still drawing may replace the chooser and
        # close its list before the option is picked.
        open_page(page, "History")
        chooser = page.locator(".st-key-hist-open").get_by_role("combobox")
        chooser.click()
        page.get_by_role("option", name=re.compile(re.escape(PROMPT))).click()

        video = page.locator(".st-key-history-open video")
        expect(video).to_be_attached()
        source = video.get_attribute("src") or ""
        ours = urlsplit(object_store.endpoint_url)
        assert urlsplit(source).netloc == ours.netloc, source
        assert urlsplit(source).path.endswith(f"/videos/{job_id}.mp4")
        assert "X-Amz-Signature=" in source

        video.evaluate("async (v) => { v.muted = true; await v.play(); }")
        page.wait_for_function(
            "(v) => v.readyState >= 2 && v.videoWidth > 0 && !v.error", arg=video.element_handle()
        )
        started_at = video.evaluate("(v) => v.currentTime")
        page.wait_for_function(
            "([v, start]) => v.currentTime >= start + 0.5 && !v.paused",
            arg=[video.element_handle(), started_at],
            timeout=10_000,
        )
        # The download is the same kind of link: the browser saves it under the job's name.
        download = page.locator(".st-key-history-open-downloads a", has_text="Download video")
        link = download.get_attribute("href") or ""
        assert urlsplit(link).netloc == ours.netloc
        saved = requests.get(link, timeout=10)
        assert saved.status_code == 200
        assert f"wan-{job_id}-" in saved.headers["Content-Disposition"]
        # No copy of the video stays on this machine's disk.
        assert not list((home / "videos").glob("*.mp4"))

        video.evaluate("(v) => { v.pause(); }")
        video.scroll_into_view_if_needed()
        page.screenshot(path=screenshot_dir / "history-video-from-bucket.png")
        context.close()
    finally:
        server.stop()
