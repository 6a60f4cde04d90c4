"""The HDF5 session file: schema, writer (threaded, crash safe) and lazy reader. No Qt."""
from .reader import SessionFileError, SessionReader, Stream
from .schema import SCHEMA_VERSION, STREAMS, SessionMeta
from .store import SessionStore, SessionWriteError
from .writer import SessionClock, SessionWriter

__all__ = [
    "SCHEMA_VERSION", "STREAMS", "SessionClock", "SessionFileError", "SessionMeta", "SessionReader",
    "SessionStore", "SessionWriteError", "SessionWriter", "Stream",
]
