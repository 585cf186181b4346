"""Users service: accounts, roles, sessions, 2FA, settings, login history, JWT issuing."""
