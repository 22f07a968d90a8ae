"""The analysts' web app and JSON API (``loophole serve``)."""
