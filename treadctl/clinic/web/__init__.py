"""The therapist's dashboard (docs/dashboard.md): server-rendered pages, a little vanilla JS."""
