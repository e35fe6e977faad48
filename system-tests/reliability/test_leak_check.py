"""make soak's leak check, without a shop: what it counts as a service's own descriptors, and
what it calls a leak. (The soak itself is not part of make test; these are its judgements.)"""

import os
import shutil
import socket
import time
import unittest

from shoptest.launcher import Shop
from shoptest.net import tcp_connections
from shoptest.soak import leaks

START = {"cm-server": (1, 40.0, 30, {"clients": 9, "cm-api": 1, "kafka": 1}),
         "cm-api": (2, 65.0, 34, {"clients": 1, "kafka": 3, "mongodb": 4})}


class TcpConnectionsTest(unittest.TestCase):
    def test_established_then_close_wait_once_the_peer_closes(self):
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            client = socket.create_connection(("127.0.0.1", port))
            accepted, _ = server.accept()
            try:
                local = client.getsockname()[1]
                mine = [c for c in tcp_connections(os.getpid()) if c[0] == local]
                self.assertEqual(mine, [(local, port, "01")])
                self.assertIn((port, local, "01"), tcp_connections(os.getpid()))
                accepted.close()
                # The kernel moves the client's end to CLOSE_WAIT once the peer's FIN arrives.
                deadline = time.monotonic() + 5
                while [c for c in tcp_connections(os.getpid()) if c[0] == local] != [(local, port, "08")] \
                        and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.assertEqual([c for c in tcp_connections(os.getpid()) if c[0] == local], [(local, port, "08")])
                # The listening socket is not a connection.
                self.assertFalse([c for c in tcp_connections(os.getpid()) if c[0] == port])
            finally:
                client.close()
                accepted.close()


class FixedConnections:
    def __init__(self, connections):
        self.connections = connections

    def tcp_connections(self):
        return self.connections


class ConnectionsTest(unittest.TestCase):
    def test_peers_are_named_and_only_mongodb_connections_count_once_closed(self):
        shop = Shop()
        shutil.rmtree(shop.data)
        api, mongo = shop.ports["api"], shop.ports["mongo"]
        shop.processes["cm-api"] = FixedConnections([
            (api, 50001, "01"), (api, 50002, "01"),      # the load's keep-alive connections
            (40001, mongo, "01"), (40002, mongo, "08"),  # the pool, one closed by a dead SecantusDB
            (40003, 9092, "01"),                         # a broker
            (40004, 9092, "08"), (api, 50003, "08"),     # closed by their peers: its own, a leak if kept
        ])
        self.assertEqual(shop.connections("cm-api"), {"clients": 2, "mongodb": 2, "kafka": 1})


class LeaksTest(unittest.TestCase):
    def test_connections_that_come_and_go_with_the_load_and_the_pool_are_not_leaks(self):
        end = {"cm-server": (1, 42.5, 90, {"clients": 66, "cm-api": 4, "kafka": 1}),
               "cm-api": (2, 86.7, 46, {"clients": 4, "kafka": 3, "mongodb": 12})}
        self.assertEqual(leaks(START, end), [])

    def test_descriptors_of_its_own_beyond_the_slack_are_a_leak(self):
        end = dict(START, **{"cm-api": (2, 65.0, 40, {"clients": 1, "kafka": 3, "mongodb": 4})})
        self.assertEqual(leaks(START, end), ["cm-api holds 32 descriptors besides its connections at the end, 26 at the start"])
        within = dict(START, **{"cm-api": (2, 65.0, 39, {"clients": 1, "kafka": 3, "mongodb": 4})})
        self.assertEqual(leaks(START, within), [])

    def test_memory_growth_beyond_32_mib_is_a_leak(self):
        end = dict(START, **{"cm-server": (1, 72.5, 30, {"clients": 9, "cm-api": 1, "kafka": 1})})
        self.assertEqual(leaks(START, end), ["cm-server RSS grew from 40.0 to 72.5 MiB"])

    def test_more_mongodb_connections_than_the_pool_allows_is_a_leak(self):
        end = dict(START, **{"cm-api": (2, 65.0, 49, {"clients": 1, "kafka": 3, "mongodb": 21})})
        self.assertEqual(leaks(START, end), ["cm-api holds 21 connections to MongoDB, more than its pools' 20"])

    def test_a_service_not_running_at_the_end_is_reported(self):
        self.assertEqual(leaks(START, {"cm-server": START["cm-server"]}), ["cm-api not running at the end"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
