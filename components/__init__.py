"""Streamlit widgets and views for Wan Studio; the only code that touches session state."""
