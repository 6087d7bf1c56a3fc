"""A rehearsed pod's command: flyte's ``a0`` entrypoint, with the rehearsal's controller installed.

Started by :func:`cluster.harness.start_attempt` as ``python pod.py <a0's args>`` (the container
args without the leading ``a0``).
"""

from __future__ import annotations

from cluster.controller import install

if __name__ == "__main__":
    install()
    from flyte._bin.runtime import main

    main(prog_name="a0")
