"""Alert records, digest rendering and delivery (SMTP or an outbox of .eml files)."""
