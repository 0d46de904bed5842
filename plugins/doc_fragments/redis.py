# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Connection options of the redis_* modules."""

    DOCUMENTATION = r"""
options:
  host:
    description: Host name or address of Redis.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port of Redis.
    type: int
    default: 6379
  username:
    description: ACL user name. Empty uses the default user.
    type: str
  password:
    description: Password of the Redis user. Empty connects without AUTH.
    type: str
"""
