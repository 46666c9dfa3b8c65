"""Where a study lives: `hydra.sweeper.storage` as an Optuna storage, refused in one line when unusable.

- null: SQLite in the search's own folder (<sweep dir>/optuna.db), so re-running the command continues;
- any SQLAlchemy URL (`sqlite:///...`, `postgresql://user@host/db`, `mysql+pymysql://...`): several
  machines can share one study;
- `journal:///path/to/study.log`: Optuna's journal file, for shared file systems (NFS) without a database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.errors import ConfigError, first_line
from genlab.run.shell import command_line

JOURNAL_SCHEME = "journal://"
DEFAULT_DATABASE = "optuna.db"
# seconds SQLite waits for another process's write lock (parallel trials report into one file)
SQLITE_BUSY_TIMEOUT = 60


def storage_url(storage: str | None, sweep_dir: str | Path) -> str:
    """The URL a study is stored at: the given one, or SQLite in the sweep folder."""
    if storage:
        return str(storage)
    return f"sqlite:///{Path(sweep_dir) / DEFAULT_DATABASE}"


def open_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None) -> Any:
    """An Optuna storage for `url`; a URL that cannot be opened is refused naming hydra.sweeper.storage.

    Heartbeats (hydra.sweeper.heartbeat_interval; stale after grace_period, twice the interval by
    default) exist for database storages only: Optuna's journal storage has none."""
    import optuna

    try:
        if url.startswith(JOURNAL_SCHEME):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len(JOURNAL_SCHEME):])
            if not path.parent.is_dir():
                raise FileNotFoundError(f"folder {path.parent} does not exist")
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}} if url.startswith("sqlite") else None
        heartbeat = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period or 2 * heartbeat_interval} if heartbeat_interval else {}
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
    except Exception as error:
        raise ConfigError(
            f"hydra.sweeper.storage={url!r} cannot be opened ({first_line(error)}): use null (SQLite in the search's folder),"
            f" a database URL such as sqlite:///path/optuna.db or postgresql://user@host/db, or {JOURNAL_SCHEME}/path/study.log"
        ) from error


def dashboard_command(url: str) -> str:
    """The optuna-dashboard command that opens this storage (a journal is opened by its file's path)."""
    target = url[len(JOURNAL_SCHEME):] if url.startswith(JOURNAL_SCHEME) else url
    return command_line(["optuna-dashboard", target])
