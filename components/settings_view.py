"""The Settings page: the mode, the key (always masked), and where things are kept."""

from __future__ import annotations

import streamlit as st

from components import state
from components.sidebar import key_in_use, key_origin
from studio.keys import KEY_FROM_SESSION
from studio.service import Studio
from studio.settings import (
    KEY_FROM_ENVIRONMENT,
    KEY_FROM_SECRETS,
    key_problem,
    mask_key,
    redacted_database_url,
)


def render_mode_and_key(*, studio: Studio) -> None:
    """Which mode new jobs run in, the key in use (masked) and where it comes from."""
    choice = key_in_use(studio=studio)
    configured = studio.settings.key_source
    with st.container(border=True, key="settings-mode"):
        st.subheader("Mode and API key")
        if choice.billed:
            st.markdown(
                f"**Billed.** New jobs are sent to the real gateway and charged to key "
                f"`{mask_key(choice.key)}` ({key_origin(choice)})."
            )
        else:
            st.markdown(
                "**Demo mode — nothing is billed.** New jobs are made by the built-in "
                "demo gateway on this computer. Enter an API key below, or set one before "
                "starting the app, to use the real models."
            )
        if choice.source == KEY_FROM_SESSION and not studio.settings.api_key:
            st.caption("The app itself has no key configured; this one lasts for this session.")
            return
        st.caption(
            {
                KEY_FROM_ENVIRONMENT: "A key is set in the environment (PIXAZO_API_KEY).",
                KEY_FROM_SECRETS: "A key is set in .streamlit/secrets.toml ([pixazo] api_key).",
            }.get(
                configured,
                "No key is configured: set PIXAZO_API_KEY, or api_key under [pixazo] in "
                ".streamlit/secrets.toml, and restart the app.",
            )
        )


def render_session_key(*, studio: Studio) -> None:
    """Enter a key for this browser session only; after saving, only its masked form shows."""
    with st.container(border=True, key="settings-session-key"):
        st.subheader("Use a key for this browser session only")
        st.caption(
            "The key stays in this server's memory while this browser session holds it and is "
            "never written to disk, the history or an export. Other browsers can't use it, even "
            "with this page's link. Jobs sent with it are followed while it is held; once it is "
            "forgotten (or this tab has been closed for a few minutes) they wait, visibly, until "
            "it is entered again."
        )
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
            st.caption(f"#{job.id} · {job.model} · {job.resolution} · {job.status.label}")


def render_where_things_are(*, studio: Studio) -> None:
    """Gateway address, data folder, database and trusted image hosts."""
    settings = studio.settings
    with st.container(border=True, key="settings-paths"):
        st.subheader("Where things are")
        # Addresses as code, not links: they are API endpoints, not pages to visit.
        gateway = f"`{settings.base_url}`"
        if studio.demo_url and not key_in_use(studio=studio).billed:
            gateway = (
                f"the built-in demo gateway on this computer (`{studio.demo_url}`); "
                f"with a key: `{settings.base_url}`"
            )
        hosts = ", ".join(settings.trusted_image_hosts) or "none — only public addresses"
        st.markdown(
            "\n".join(
                [
                    f"- **Gateway:** {gateway}",
                    f"- **Data folder:** `{settings.home}` (images, videos and the history)",
                    f"- **Database:** `{masked_database_url(settings.database_url)}`",
                    f"- **Trusted image hosts:** {hosts}",
                ]
            )
        )
        st.caption(
            "Set these before starting the app: PIXAZO_BASE_URL, WAN_STUDIO_HOME, "
            "WAN_STUDIO_DATABASE_URL, WAN_STUDIO_TRUSTED_IMAGE_HOSTS (comma-separated host or "
            "host:port, for links to an internal image server)."
        )


def masked_database_url(url: str) -> str:
    """The database URL with any password replaced by stars."""
    return redacted_database_url(url)
