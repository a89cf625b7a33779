"""Database helpers below the services: the bulk insert (bulk.py), the same-file-name lock (locks.py) and
the SQLite connection settings (sqlite.py)."""
