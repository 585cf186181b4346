"""Mail adapters behind ``core.ports.Mailer``: console (embedded default) and SMTP."""
