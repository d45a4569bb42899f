"""The shipped default document collection (data only; see README.md here)."""
