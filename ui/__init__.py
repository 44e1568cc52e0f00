"""The Streamlit side shared by the page scripts in pages/: session state, navigation, and the views pages share."""
