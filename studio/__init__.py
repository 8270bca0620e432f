"""Wan Studio's domain: the gateway contract, images, jobs and costs. No Streamlit in here."""
