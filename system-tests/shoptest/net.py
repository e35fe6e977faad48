"""Loopback networking for the harness: free ports, one GET, what a process is connected to."""

import http.client
import os
import socket
import urllib.parse


def free_port():
    """A TCP port nothing listens on now (the kernel's pick for 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port, host="127.0.0.1"):
    """Whether something accepts connections on `port`."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def http_get(url, path, timeout=10.0):
    """(status, body bytes) of one GET on a new connection; (0, b"") when nothing answers."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        connection.close()


def tcp_connections(pid):
    """(local port, remote port, state) of each TCP connection process `pid` holds but its
    listening sockets, from /proc: its socket descriptors matched by inode against the kernel's
    connection table (state "01" established, "08" CLOSE_WAIT: the peer closed)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] != "0A" and fields[9] in inodes:
                    found.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16), fields[3]))
    return found
