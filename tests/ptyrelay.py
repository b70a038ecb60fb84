"""A socat stand-in: two linked ptys relayed by this process; killing it is an unplug.

Usage: python tests/ptyrelay.py LINK_A LINK_B  (used by the tests when socat is not installed)
"""

from __future__ import annotations

import os
import select
import sys
import tty
from pathlib import Path


def main() -> None:
    links = [Path(arg) for arg in sys.argv[1:3]]
    masters = []
    slaves = []
    for link in links:
        master, slave = os.openpty()
        tty.setraw(slave)
        masters.append(master)
        slaves.append(slave)  # held open so a master never reads EIO between host opens
        link.symlink_to(os.ttyname(slave))
    peer = {masters[0]: masters[1], masters[1]: masters[0]}
    while True:
        ready, _, _ = select.select(masters, [], [])
        for fd in ready:
            os.write(peer[fd], os.read(fd, 4096))


if __name__ == "__main__":
    main()
