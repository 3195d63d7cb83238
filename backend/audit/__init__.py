"""The audit log: who did what with sensitive data (exports, ...), and when."""
