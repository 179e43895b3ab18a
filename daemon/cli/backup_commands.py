"""`meterd backup` and `meterd restore`: a checked copy of the store, and the way back from one."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.kernel.clock import utc_now
from daemon.services.backup import make_backup, restore_backup
from daemon.settings import Settings
from daemon.storage.engine import mask


def add_backup_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    backup = sub.add_parser(
        "backup", parents=[common], help="a consistent, encrypted copy of the store, with its SHA-256"
    )
    backup.add_argument("--to", type=Path, metavar="DIR", help="default: backup.dir (STATE_DIR/backups)")
    backup.add_argument("--keep", type=int, help="newest backups of this site to keep (default: backup.keep)")
    backup.set_defaults(handler=cmd_backup)
    restore = sub.add_parser("restore", parents=[common], help="restore a backup into an empty store")
    restore.add_argument("file", type=Path)
    restore.add_argument("--force", action="store_true", help="replace whatever the store holds")
    restore.set_defaults(handler=cmd_restore)


async def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    made = await make_backup(
        settings.database_url,
        args.to or settings.backup_dir,
        site=settings.site,
        keep=args.keep or settings.backup.keep,
        now=utc_now(),
        key_file=settings.backup_key_file,
    )
    print(f"{made.path} ({made.size:,} bytes, sha256 {made.sha256})")
    return 0


async def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    await restore_backup(
        settings.database_url, args.file, site=settings.site, force=args.force, key_file=settings.backup_key_file
    )
    print(f"{args.file} restored into {mask(settings.database_url)}")
    return 0
