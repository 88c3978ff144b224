"""``python -m training`` (the entry torchrun needs): the same options as ``pxby-edge train``.

    torchrun --nproc_per_node=2 -m training --data runs/synth --out runs/ddp --config tiny
"""

from __future__ import annotations

import sys

from pxby_edge.errors import PxbyError
from training.commands import train as train_command


def main(argv=None) -> int:
    try:
        train_command.main(args=argv if argv is not None else sys.argv[1:], prog_name="python -m training",
                           standalone_mode=False)
    except PxbyError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
