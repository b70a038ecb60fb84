"""The clinic service (`treadctl clinic`, docs/clinic.md): people, prescriptions, annotations and
a copy of every session from every treadmill on the broker. Needs the `clinic` extra."""
