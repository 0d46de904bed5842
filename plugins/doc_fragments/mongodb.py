# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Connection options of the mongo_* modules."""

    DOCUMENTATION = r"""
options:
  uri:
    description:
      - MongoDB connection URI, such as
        C(mongodb://backup:secret@127.0.0.1:27017/truebond?authSource=admin).
      - It is never logged, and messages name only its hosts.
    type: str
    required: true
  timeout:
    description:
      - Seconds each operation may wait to select a server, to connect, and for a
        connection from the pool, for example while a replica set elects a new
        primary.
    type: float
    default: 30
  connect_timeout:
    description:
      - Seconds to wait for the server's first answer, before anything is read or
        written. A server that is down or unreachable fails the module after this
        long.
      - A value above O(timeout) waits O(timeout) seconds.
    type: float
    default: 10
"""
