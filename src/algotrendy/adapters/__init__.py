"""adapters layer (see ARCHITECTURE.md)."""
