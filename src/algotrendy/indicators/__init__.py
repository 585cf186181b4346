"""indicators layer (see ARCHITECTURE.md)."""
