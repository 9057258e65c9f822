"""The part of MMEngine's ``mmengine.fileio`` ported code uses most: local files only.

`load`/`dump` read and write JSON, JSON lines, YAML-free formats and pickles by suffix;
`LocalBackend` and `FileClient` are the local-disk backend of MMEngine's file client.
Remote storage (Petrel, HTTP, LMDB) is not provided.
"""

from engine.fileio.local_files import FileClient, LocalBackend, dump, load

__all__ = ["FileClient", "LocalBackend", "dump", "load"]
