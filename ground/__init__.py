"""The ground floor: settings (``ground.config``) and source definitions (``ground.sources``).

Every other package may import it and it imports none of them, so whoever starts the work (the
command line, the service, the web app, a test) builds one ``Settings`` here and passes it down.
"""
