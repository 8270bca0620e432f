"""The Settings page: the mode, the key (always masked), and where things are kept."""

from __future__ import annotations

import streamlit as st

from components import state
from components.formatting import money_text
from components.sidebar import TEAM_KEY_WORDS, key_in_use, key_origin, key_words
from components.signin import sign_in_required
from studio.errors import AuthenticationError, GatewayError
from studio.limits import limit_money
from studio.service import Studio
from studio.settings import (
    DAILY_LIMIT_VARIABLE,
    KEY_FROM_ENVIRONMENT,
    KEY_FROM_SECRETS,
    MONTHLY_LIMIT_VARIABLE,
    key_problem,
    mask_key,
    redacted_database_url,
)


def render_mode_and_key(*, studio: Studio) -> None:
    """Which mode new jobs run in, and the key in use (masked), in plain words."""
    choice = key_in_use(studio=studio)
    with st.container(border=True, key="settings-mode"):
        st.subheader("Mode and API key")
        if choice.billed and key_words(choice) == TEAM_KEY_WORDS:
            # With sign-in, the deployment's key is everyone's: not even its end is shown.
            st.markdown(
                "**Billed.** New jobs are made by Pixazo's Wan models and charged to the team's "
                "key, which this app keeps to itself."
            )
        elif choice.billed:
            st.markdown(
                f"**Billed.** New jobs are made by Pixazo's Wan models and charged to key "
                f"`{mask_key(choice.key)}` ({key_origin(choice)})."
            )
        else:
            st.markdown(
                "**Demo mode — nothing is billed.** New jobs are made by a built-in demo on this "
                "computer, which moves the camera over your frame instead of running a model. "
                "Enter a Pixazo API key below to use the real models."
            )


# What happens to a typed key, as the tests check it: state.py keeps it in this browser
# session's state, which a reload replaces and Streamlit drops a few minutes after a tab closes.
SESSION_KEY_LIFETIME = (
    "The key is first checked with Pixazo (free), then kept in this server's memory for this "
    "browser tab only: never on disk, in the history or in an export, and other browsers can't "
    "use it, even with this page's link. Reloading the page, closing the tab or restarting the "
    "app forgets it; enter it again then. Jobs sent with it that are still running wait, "
    "visibly, until it is entered again."
)


def render_session_key(*, studio: Studio) -> None:
    """Enter a key for this browser session only; after saving, only its masked form shows."""
    with st.container(border=True, key="settings-session-key"):
        st.subheader("Use a key in this browser tab")
        st.caption(SESSION_KEY_LIFETIME)
        saved = state.session_api_key()
        if saved:
            st.success(
                f"Using key {mask_key(saved)} in this browser session.", icon=":material/key:"
            )
            st.button(
                "Forget this key",
                key=state.SETTINGS_FORGET_KEY,
                icon=":material/key_off:",
                on_click=_forget_session_key,
                kwargs={"studio": studio},
            )
            return
        st.text_input(
            "API key",
            type="password",
            key=state.SETTINGS_KEY_INPUT,
            placeholder="Paste your Pixazo subscription key",
            autocomplete="off",
        )
        problem = state.key_error()
        if problem:
            st.error(problem, icon=":material/error:")
        st.button(
            "Use this key",
            key=state.SETTINGS_SAVE_KEY,
            type="primary",
            icon=":material/key:",
            on_click=_save_session_key,
            kwargs={"studio": studio},
        )


def _save_session_key(*, studio: Studio) -> None:
    key = (st.session_state.get(state.SETTINGS_KEY_INPUT) or "").strip()
    # The typed key leaves the widget at once, so it is never sent back to the browser.
    st.session_state[state.SETTINGS_KEY_INPUT] = ""
    state.set_key_error(None)
    if not key:
        return
    problem = key_problem(key)
    if problem:
        state.set_key_error(problem)
        return
    # Asked before the switch to billed mode, so a wrong key is said at once, not on a job.
    try:
        studio.check_key(key)
    except AuthenticationError:
        state.set_key_error(
            "Pixazo did not accept this key: check that you copied all of it, and that your "
            "subscription is active. Nothing was charged, and the app stays in demo mode."
        )
        return
    except GatewayError as error:
        state.set_key_error(
            f"The key could not be checked: {error.message} {error.hint} "
            "The app stays in demo mode until it can be."
        )
        return
    holder = state.key_holder()
    studio.use_session_key(key, holder=holder.id, alive=holder)
    state.set_session_api_key(key)


def _forget_session_key(*, studio: Studio) -> None:
    key = state.session_api_key()
    if key:
        studio.forget_session_key(key, holder=state.key_holder().id)
    state.set_session_api_key(None)


def render_waiting_jobs(*, studio: Studio) -> None:
    """Jobs the watcher cannot follow until the key they were sent with is entered again."""
    waiting = studio.jobs_waiting_for_key()
    if not waiting:
        return
    with st.container(border=True, key="settings-waiting"):
        st.subheader("Jobs waiting for a key")
        st.warning(
            f"{len(waiting)} job{'s' if len(waiting) != 1 else ''} sent with a key this app no "
            "longer holds (it was forgotten, or entered in a browser session before a restart). "
            "Enter that key above and they carry on.",
            icon=":material/hourglass_empty:",
        )
        for job in waiting[:20]:
            model = studio.catalog.models.get(job.model)
            label = model.label if model else job.model
            st.caption(f"#{job.id} · {label} · {job.resolution} · {job.status.label}")


def render_for_administrators(*, studio: Studio) -> None:
    """Where the key, the gateway, the data and the database come from: settings, not words."""
    settings = studio.settings
    configured = {
        KEY_FROM_ENVIRONMENT: "set in the environment (`PIXAZO_API_KEY`)",
        KEY_FROM_SECRETS: "set in `.streamlit/secrets.toml` (`api_key` under `[pixazo]`)",
    }.get(settings.key_source, "none configured")
    # Addresses as code, not links: they are API endpoints, not pages to visit.
    gateway = f"`{settings.base_url}`"
    if studio.demo_url and not key_in_use(studio=studio).billed:
        gateway = (
            f"the built-in demo gateway on this computer (`{studio.demo_url}`); "
            f"with a key: `{settings.base_url}`"
        )
    hosts = ", ".join(settings.trusted_image_hosts) or "none — only public addresses"
    with (
        st.container(key="settings-paths"),
        st.expander("For administrators", icon=":material/admin_panel_settings:"),
    ):
        st.markdown(
            "\n".join(
                [
                    f"- **App's own API key:** {configured}",
                    f"- **Gateway:** {gateway}",
                    f"- **Data folder:** `{settings.home}` (images, videos and the history)",
                    f"- **Database:** `{masked_database_url(settings.database_url)}`",
                    f"- **Trusted image hosts:** {hosts}",
                    f"- **Spending limits:** {_fixed_limits_words(studio)}",
                    f"- **Sign-in:** {_sign_in_words()}",
                    f"- **Media storage:** {_media_words(settings.media_url)}",
                    f"- **Job watcher:** {_watcher_words(studio)}",
                ]
            )
        )
        st.caption(
            "Set these before starting the app, then restart it: PIXAZO_API_KEY (or api_key "
            "under [pixazo] in .streamlit/secrets.toml), PIXAZO_BASE_URL, WAN_STUDIO_HOME, "
            "WAN_STUDIO_DATABASE_URL, and WAN_STUDIO_TRUSTED_IMAGE_HOSTS (comma-separated host "
            "or host:port, for links to an internal image server). Pixazo keys come from your "
            "subscription on pixazo.ai. Spending limits in US dollars, which the Settings page "
            f"then shows as fixed: {DAILY_LIMIT_VARIABLE} and {MONTHLY_LIMIT_VARIABLE} (or "
            "daily_limit_usd and monthly_limit_usd under [pixazo] in secrets.toml). Object "
            "storage for first frames and videos (needed when the video service refuses images "
            "sent inline): WAN_STUDIO_MEDIA_URL=s3://bucket/prefix with AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and, for MinIO, R2 or another "
            "S3-compatible store, AWS_ENDPOINT_URL. For a team: WAN_STUDIO_WATCHER=off leaves "
            "following jobs to separate workers (python -m studio watch), and "
            "WAN_STUDIO_KEY_SALT gives every process the same key salt."
        )


def _sign_in_words() -> str:
    if not sign_in_required():
        return "off (add an `[auth]` section to `.streamlit/secrets.toml` to turn it on)"
    return (
        "on (`[auth]` in `.streamlit/secrets.toml`); administrators from `WAN_STUDIO_ADMINS` "
        "(comma separated) or `admins` under `[people]` in secrets"
    )


def _media_words(media_url: str | None) -> str:
    if media_url:
        return f"`{media_url}` (first frames reach the gateway as presigned links)"
    return "the data folder; first frames reach the gateway inline as `data:` URIs"


def _watcher_words(studio: Studio) -> str:
    if studio.settings.run_watcher:
        return "runs in this app process"
    return "off in this app process (`WAN_STUDIO_WATCHER`); separate workers follow the jobs"


def _fixed_limits_words(studio: Studio) -> str:
    fixed = studio.deployment_spending_limit
    named = [
        f"{what} {limit_money(cap)} (`{variable}` or secrets)"
        for what, cap, variable in (
            ("daily", fixed.daily_usd, DAILY_LIMIT_VARIABLE),
            ("monthly", fixed.monthly_usd, MONTHLY_LIMIT_VARIABLE),
        )
        if cap is not None
    ]
    if not named:
        return "none fixed by the deployment; set on this page"
    return money_text("fixed by the deployment: " + ", ".join(named))


def masked_database_url(url: str) -> str:
    """The database URL with any password replaced by stars."""
    return redacted_database_url(url)
