# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_server_info
short_description: Read the persistence settings of a running Redis
description:
  - Reads what a restore needs to know while Redis still runs, from C(CONFIG GET)
    and INFO, the data folder, the RDB file name, whether append-only is on and the
    names of the append-only files, the configuration file and the key counts.
  - community.general.redis_info returns INFO only, which has neither the data
    folder nor the file names.
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - truebond.rollback.redis
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs in check mode as in a normal run.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - redis (redis-py) on the host that runs the module.
options:
  timeout:
    description:
      - Seconds to wait until Redis accepts connections and has finished loading its
        data, for a server that was just started. C(0) tries once.
    type: int
    default: 0
notes:
  - The user needs the C(CONFIG) command. When CONFIG is renamed or denied, the task
    fails and says so.
"""

EXAMPLES = r"""
- name: Read where Redis keeps its files
  truebond.rollback.redis_server_info:
    port: 6379
    password: "{{ vault_redis_password }}"
  register: redis_server

- name: Show the data folder
  ansible.builtin.debug:
    msg: "{{ redis_server.config.dir }}/{{ redis_server.config.dbfilename }}"
"""

RETURN = r"""
redis_version:
  description: Version of the Redis server.
  type: str
  returned: always
  sample: 7.0.15
config:
  description:
    - Persistence settings. C(appendonly) is a bool, C(appenddirname) is null before
      Redis 7, C(config_file) is empty when Redis runs without one.
  type: dict
  returned: always
  sample:
    dir: /var/lib/redis
    dbfilename: dump.rdb
    appendonly: false
    appenddirname: appendonlydir
    appendfilename: appendonly.aof
    save: "3600 1 300 100 60 10000"
    config_file: /etc/redis/redis.conf
keyspace:
  description: Keys and keys with a TTL per database, from INFO keyspace.
  type: dict
  returned: always
  sample: {db0: {keys: 120, expires: 20}}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.truebond.rollback.plugins.module_utils import _redis


def read_config(client) -> dict:
    """Return the persistence settings of a running Redis."""
    server_info = client.info("server")
    version = str(server_info.get("redis_version", "unknown"))
    appenddirname = _redis.config_get(client, "appenddirname")
    return {
        "redis_version": version,
        "config": {
            "dir": _redis.config_get(client, "dir"),
            "dbfilename": _redis.config_get(client, "dbfilename"),
            "appendonly": _redis.config_get(client, "appendonly") == "yes",
            "appenddirname": appenddirname,
            "appendfilename": _redis.config_get(client, "appendfilename"),
            "save": _redis.config_get(client, "save"),
            "config_file": server_info.get("config_file") or "",
        },
        "keyspace": _redis.keyspace(client),
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 6379},
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "timeout": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not _redis.HAS_REDIS:
        module.fail_json(
            msg=missing_required_lib("redis"), exception=_redis.REDIS_IMPORT_ERROR
        )
    where = _redis.address(params["host"], params["port"])
    try:
        if params["timeout"] > 0:
            client = _redis.wait_for_ping(
                params["host"],
                params["port"],
                params["password"],
                params["username"],
                timeout=params["timeout"],
            )
        else:
            client = _redis.connect(
                params["host"], params["port"], params["password"], params["username"]
            )
        result = read_config(client)
    except _redis.RedisError as error:
        module.fail_json(msg=str(error))
    except _redis.redis.exceptions.ResponseError as error:
        module.fail_json(
            msg=f"reading the configuration of Redis at {where} failed: {error}. "
            "The user needs the CONFIG command."
        )
    except _redis.redis.exceptions.RedisError as error:
        module.fail_json(msg=f"reading Redis at {where} failed: {error}")
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"redis_server_info failed unexpectedly on {where}: {error}",
            exception=traceback.format_exc(),
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
