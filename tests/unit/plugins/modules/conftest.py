# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by the module tests in this folder."""

from __future__ import annotations

import pytest

# pytest's default "prepend" import mode puts this folder on sys.path, because the
# test folders have no __init__.py.
from mongo_server import start_server, unique_name

# Loopback ports for the SecantusDB server of the test_mongo_* modules. Each test
# module starts its own server on the first free port in this range.
MONGO_PORTS = range(27101, 27120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Start one SecantusDB server per test module (test_mongo_*)."""
    mongo = start_server(tmp_path_factory, MONGO_PORTS)
    yield mongo
    mongo.stop()


@pytest.fixture
def client(server):
    """Return a pymongo client of the server, closed after the test."""
    connection = server.client()
    yield connection
    connection.close()


@pytest.fixture
def database(client, request):
    """Return an empty database named after the test, dropped before and after it."""
    name = unique_name(request)
    client.drop_database(name)
    yield client[name]
    client.drop_database(name)
