"""Program files: the built-in library, user directories, and the JSON Schema for editors."""
