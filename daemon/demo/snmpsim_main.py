"""Start snmpsim's command responder with the modules it imports late already loaded.

As root, snmpsim must drop to an unprivileged user before it serves. When the
interpreter lives where that user cannot read (pyenv under /root), its late
imports fail after the drop; importing them here, before the drop, avoids that.
"""

import dbm.dumb  # noqa: F401 - the record index snmpsim builds
import encodings.ascii
import encodings.latin_1  # noqa: F401 - snmpsim reads .snmprec files as Latin-1
import sys

from snmpsim.commands.responder import main

if __name__ == "__main__":
    sys.exit(main())
