"""`treadctl start|stop|…|status`: the command line's MQTT client of a running daemon.

`transport` (where the daemon is; a command and its answer; the retained state), `render`
(turning payloads into lines for a person), `watch` (`status --watch`), `commands` (the
subcommands and their handlers).
"""
