"""The REST API (DESIGN.md §7): token auth per user, every query scoped to the caller's
organization. Included by the project's urls at "api/"."""
