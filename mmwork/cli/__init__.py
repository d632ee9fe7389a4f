"""The ``mmwork`` command line: a thin layer over the library.

    mmwork data list | get NAME [--source PATH] [--force] | info NAME | import NAME SOURCE
    mmwork models list | get smollm2|piper-voice|whisper-tiny|all [--force]
    mmwork tables
    mmwork extract DATASET [--modalities text,image,audio] [--scheduler ADDRESS] [--workers N]
    mmwork cluster start [--workers N] | status | stop
    mmwork query DATASET TABLE [--columns ...] [--where "col op value"]... [--limit N] [--output F]
    mmwork similar DATASET ITEM_ID... --features TABLE:COLUMN [--k 10] [--index] [--[no-]standardize]
    mmwork index build DATASET FEATURES [--kind ivf|hnsw] | list
    mmwork report run NOTEBOOK [-p NAME VALUE]... [-f params.yaml] | list | compare RUN_A RUN_B
    mmwork recommend evaluate --dataset movielens-100k --models pop,ease --protocol recbole [--json]
    mmwork generate train|sample|evaluate|list --dataset fashion-mnist --model vae|cvae|gan|text-cvae [--json]
    mmwork generate for-user USER_ID --dataset movielens-100k [--n 10] [--evaluate] [--json]
    mmwork demo
"""
from __future__ import annotations

import sys

from mmwork.cli.parser import build_parser
from mmwork.core.errors import MmworkError

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except MmworkError as exc:
        print(f"mmwork: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The store's writers turn these into one line themselves; this catches any other write under
        # the data root (models, caches) that meets a full disk, no permission or a read-only mount.
        import shutil

        from mmwork.core.paths import data_root
        from mmwork.store.disk import DISK_ERRNOS, disk_error, os_errno
        if os_errno(exc) not in DISK_ERRNOS:
            raise
        path = exc.filename
        if path is None and isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
            path = next((entry[1] for entry in exc.args[0] if isinstance(entry, tuple) and len(entry) > 1), None)
        print(f"mmwork: error: {disk_error(exc, path or data_root(), then='then run the command again')}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmwork: interrupted; tables already written are complete, nothing partial was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
