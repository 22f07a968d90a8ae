"""Loophole Watch: command line, configuration, the pipeline that joins the stages, the web app."""

__version__ = "0.1.0"
