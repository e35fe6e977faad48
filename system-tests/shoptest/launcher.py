"""The one launcher of the whole shop: kafka-mock, SecantusDB, cm-api and cm-server.

`make run` runs it as a program (`python -m shoptest.launcher`, see main() below): fixed ports, data in
.data, and supervision: when one process stops, or on SIGINT/SIGTERM however often they come,
everything stops. The browser test, the end-to-end and reliability suites, `make soak` and `make
bench` use the Shop class: free loopback ports, a throwaway data folder, and each process under
the caller's control. It is Python rather than shell because the test suites need those levers
(and a shell trap cannot both supervise and survive a second signal cleanly: make forwards a
group's SIGTERM to its recipe again). Each process runs in a session of its own, so a signal to
the launcher's group reaches only the launcher, which stops them in reverse order.

The levers:

    kafka_down / kafka_up      every broker of kafka-mock down / up (SIGUSR1 / SIGUSR2)
    kill / start               SIGKILL (or any signal) to one service, then the same command again
    pause / resume             SIGSTOP / SIGCONT: a service that accepts connections and answers none
    usage                      RSS and open file descriptors of each service, from /proc
    metrics                    a service's /metrics, parsed
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from shoptest import ROOT, TOPIC
from shoptest import kafka
from shoptest.net import free_port, http_get, listening, tcp_connections
from shoptest.servers import secantus_command


class Process:
    """One service: its command, environment and log; started and signalled by the shop."""

    def __init__(self, name, argv, env, log_dir):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = os.path.join(log_dir, name + ".log")
        self.popen = None
        self.starts = 0

    def start(self):
        assert not self.alive, f"{self.name} is already running"
        log = open(self.log_path, "ab")
        log.write(f"\n==== start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.starts += 1

    @property
    def pid(self):
        return self.popen.pid

    @property
    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def send(self, number):
        self.popen.send_signal(number)

    def wait(self, timeout):
        """The exit status, or None if still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, number=signal.SIGTERM, timeout=30):
        if not self.alive:
            return self.popen.returncode if self.popen else None
        os.kill(self.pid, signal.SIGCONT)
        self.send(number)
        status = self.wait(timeout)
        if status is None:
            self.send(signal.SIGKILL)
            status = self.wait(None)
        return status

    def usage(self):
        """(RSS in MiB, open file descriptors) from /proc."""
        with open(f"/proc/{self.pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return rss / 1024, len(os.listdir(f"/proc/{self.pid}/fd"))

    def tcp_connections(self):
        return tcp_connections(self.pid)

    def tail(self, lines=30):
        with open(self.log_path, "rb") as log:
            return b"\n".join(log.read().splitlines()[-lines:]).decode(errors="replace")


class Shop:
    """kafka-mock, SecantusDB, cm-api and cm-server.

    `bin_dir` holds the Swift binaries (.build/debug for make test, .build/release for make run,
    make soak and make bench). By default every port is a free loopback port and the data folder
    is a new throwaway one; `ports` ({"server", "api", "mongo"}) and `data` fix them. With
    `kafka_brokers` or `mongodb_uri` the shop uses that Kafka or MongoDB instead of starting
    kafka-mock or SecantusDB. Overrides in `env` reach cm-api and cm-server (for example
    CM_API_TIMEOUT_MS); `quick_fetch` sets KAFKA_FETCH_WAIT_MAX_MS to 10 ms, as the suites need
    (librdkafka's mock broker holds a fetch that finds nothing for the whole wait; a real broker
    answers when data arrives). `test_commands` lets SecantusDB take `configureFailPoint`, so a suite
    can make MongoDB refuse writes as a real deployment can (`mongo()` is a client for that).
    """

    def __init__(self, bin_dir=None, partitions=6, env=None, data=None, ports=None, kafka_brokers=None,
                 mongodb_uri=None, log_level="notice", quick_fetch=True, test_commands=False, images=None):
        self.bin_dir = bin_dir or os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "debug")
        self.data = data or tempfile.mkdtemp(prefix="shop.")
        self.log_dir = os.path.join(self.data, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.partitions = partitions
        self.ports = dict(ports) if ports else {name: free_port() for name in ("server", "api", "mongo")}
        self.server_url = "http://127.0.0.1:%d" % self.ports["server"]
        self.api_url = "http://127.0.0.1:%d" % self.ports["api"]
        self.bootstrap = kafka_brokers
        self.mongodb_uri = mongodb_uri
        self.log_level = log_level
        self.quick_fetch = quick_fetch
        self.extra_env = env or {}
        self.test_commands = test_commands
        # {service: image}: run those services from their container images (shoptest.images)
        # instead of the binaries; `containers` holds each one's container name.
        self.images = images or {}
        self.containers = {}
        self._mongo = None
        self.processes = {}

    # -- start and stop ------------------------------------------------------------------------

    def _environment(self, **values):
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BROKERS", "MONGODB_URI", "PORT")}
        env.update({k: str(v) for k, v in values.items()})
        return env

    def start(self, say=lambda line: None):
        """Starts every process, each once the one before it is ready; `say` hears where each is."""
        if self.bootstrap is None:
            bootstrap_file = os.path.join(self.data, "kafka-bootstrap")
            if os.path.exists(bootstrap_file):
                os.remove(bootstrap_file)
            self.processes["kafka-mock"] = Process(
                "kafka-mock", [os.path.join(self.bin_dir, "kafka-mock")],
                self._environment(KAFKA_TOPIC=TOPIC, KAFKA_MOCK_PARTITIONS=self.partitions,
                                  KAFKA_MOCK_BOOTSTRAP_FILE=bootstrap_file), self.log_dir)
            self.processes["kafka-mock"].start()
            self._wait("kafka-mock", lambda: os.path.exists(bootstrap_file) and os.path.getsize(bootstrap_file) > 0,
                       30)
            with open(bootstrap_file) as f:
                self.bootstrap = f.read().strip()
            say("Kafka      %s (kafka-mock: kill -USR1 %d takes it down, -USR2 brings it back)"
                % (self.bootstrap, self.processes["kafka-mock"].pid))
        if self.mongodb_uri is None:
            self.processes["secantusdb"] = Process(
                "secantusdb",
                secantus_command(self.ports["mongo"], os.path.join(self.data, "mongo"), self.test_commands),
                self._environment(), self.log_dir)
            self.start_service("secantusdb")
            self.mongodb_uri = "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=2000" % self.ports["mongo"]
            say("MongoDB    %s (SecantusDB, data in %s)" % (self.mongodb_uri, os.path.join(self.data, "mongo")))
        common = dict(KAFKA_BROKERS=self.bootstrap, KAFKA_TOPIC=TOPIC, LOG_LEVEL=self.log_level)
        # Every local client is 127.0.0.1, so per-address rate limits would throttle the load
        # tests and the benchmark as one client: off unless asked for (env or `env=`).
        for limit in ("RATE_LIMIT_BUY_PER_SECOND", "RATE_LIMIT_LIST_PER_SECOND"):
            common[limit] = os.environ.get(limit, "0")
        api_env = dict(common, PORT=self.ports["api"], MONGODB_URI=self.mongodb_uri)
        if self.quick_fetch:
            api_env["KAFKA_FETCH_WAIT_MAX_MS"] = 10
        server_env = dict(common, PORT=self.ports["server"], CM_API_HOST="127.0.0.1:%d" % self.ports["api"])
        api_env.update(self.extra_env)
        server_env.update(self.extra_env)
        self.processes["cm-api"] = self._service("cm-api", api_env)
        self.processes["cm-server"] = self._service("cm-server", server_env)
        self.start_service("cm-api")
        say("cm-api     %s" % self.api_url)
        self.start_service("cm-server")
        say("cm-server  %s" % self.server_url)
        return self

    def _service(self, name, env):
        """The process of one service: its binary, or its image under podman."""
        if name not in self.images:
            return Process(name, [os.path.join(self.bin_dir, name)], self._environment(**env), self.log_dir)
        from shoptest import images

        argv, self.containers[name] = images.run_command(name, self.images[name], env, self.data)
        return Process(name, argv, images.environment(), self.log_dir)

    def start_service(self, name, timeout=120):
        """Starts one service (again) and waits until it is ready."""
        self.processes[name].start()
        if name == "secantusdb":
            self._wait(name, lambda: listening(self.ports["mongo"]), timeout)
        elif name in ("cm-api", "cm-server"):
            self._wait(name, lambda: self.ready(name), timeout)

    def stop(self, say=lambda line: None):
        """Stops every process, in reverse order of start: SIGTERM, then SIGKILL after 30 s."""
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None
        for name in ("cm-server", "cm-api", "secantusdb", "kafka-mock"):
            if name in self.processes:
                status = self.processes[name].stop()
                if status not in (None, 0):
                    say(f"{name} exited with status {status}; log: {self.processes[name].log_path}")
        if self.containers:
            # A container outlives a podman run that was killed: remove what is left.
            from shoptest import images

            subprocess.run(["podman", "rm", "--force", "--ignore", *self.containers.values()],
                           env=images.environment(), capture_output=True, timeout=120)

    def _wait(self, name, check, timeout):
        deadline = time.monotonic() + timeout
        process = self.processes[name]
        while time.monotonic() < deadline:
            if check():
                return
            if not process.alive:
                raise RuntimeError(f"{name} exited while starting:\n{process.tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"{name} was not ready within {timeout} s:\n{process.tail()}")

    # -- levers --------------------------------------------------------------------------------

    def kafka_down(self):
        self.processes["kafka-mock"].send(signal.SIGUSR1)

    def kafka_up(self):
        self.processes["kafka-mock"].send(signal.SIGUSR2)

    def kill(self, name, number=signal.SIGKILL, timeout=30):
        """Signals one service and waits for it to exit; returns its exit status."""
        return self.processes[name].stop(number, timeout)

    def pause(self, name):
        self.processes[name].send(signal.SIGSTOP)

    def resume(self, name):
        self.processes[name].send(signal.SIGCONT)

    # -- observations --------------------------------------------------------------------------

    def url(self, name):
        return self.server_url if name == "cm-server" else self.api_url

    def ready(self, name, path="/readyz"):
        """Whether the service's readiness (or cm-api's ingest readiness, path="/readyz/ingest") is 200."""
        return http_get(self.url(name), path, timeout=5)[0] == 200

    def healthy(self, name):
        return self.processes[name].alive and http_get(self.url(name), "/healthz", timeout=5)[0] == 200

    def metrics(self, name):
        """{"name{labels}": value} from the service's /metrics."""
        status, body = http_get(self.url(name), "/metrics")
        if status != 200:
            raise RuntimeError(f"{name} /metrics answered {status}")
        values = {}
        for line in body.decode().splitlines():
            match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$", line)
            if match:
                values[match.group(1)] = float(match.group(2))
        return values

    def metric(self, name, key):
        return self.metrics(name).get(key, 0.0)

    def metric_total(self, name, metric):
        """The sum of a metric over all its label sets."""
        return sum(value for key, value in self.metrics(name).items() if key == metric or key.startswith(metric + "{"))

    def readiness(self, name, path="/readyz"):
        """(status, body) of the service's /readyz (or `path`)."""
        status, body = http_get(self.url(name), path, timeout=5)
        return status, body.decode(errors="replace")

    def dlq(self, *arguments, timeout=60, env=None):
        """Runs `cm-api dlq ARGUMENTS` against the shop's Kafka, with `env` added to its environment:
        (exit status, stdout, stderr)."""
        done = subprocess.run([os.path.join(self.bin_dir, "cm-api"), "dlq", *arguments], capture_output=True,
                              text=True, timeout=timeout,
                              env=self._environment(KAFKA_BROKERS=self.bootstrap, KAFKA_TOPIC=TOPIC, **(env or {})))
        return done.returncode, done.stdout, done.stderr

    def mongo(self):
        """A pymongo client of the shop's MongoDB, named "operator" (failpoints can spare it); one per
        shop, closed by `stop()`."""
        import pymongo

        if self._mongo is None:
            self._mongo = pymongo.MongoClient(self.mongodb_uri, appname="operator")
        return self._mongo

    def mongo_collection(self):
        """cm-api's purchases collection, through `mongo()`."""
        env = self.extra_env
        return self.mongo()[env.get("MONGODB_DB", "scalable-shop")][env.get("MONGODB_COLLECTION", "purchases")]

    def topic_end_offsets(self, topic=TOPIC):
        """{partition: end offset} of a topic, asked of kafka-mock with confluent-kafka."""
        return kafka.end_offsets(self.bootstrap, topic)

    def caught_up(self):
        """Whether cm-api's consumer has read and committed everything on the purchases topic:
        every partition's lag 0 and nothing consumed for a second."""
        try:
            before = self.metrics("cm-api")
            time.sleep(1)
            after = self.metrics("cm-api")
        except RuntimeError:
            return False
        lags = [value for key, value in after.items() if key.startswith("cmapi_consumer_lag_messages{")]
        consumed = "cmapi_events_consumed_total"
        return bool(lags) and sum(lags) == 0 and before.get(consumed) == after.get(consumed)

    def usage(self):
        """{service: (RSS MiB, fds)} of every running service."""
        return {name: p.usage() for name, p in self.processes.items() if p.alive}

    def connections(self, name):
        """{peer: count} of a service's TCP connections, established: "clients" are connections to
        its own port (the load's keep-alive connections), the others are named by the port they
        reach ("mongodb", "cm-api", and "kafka" for anything else, kafka-mock's brokers).

        Connections to MongoDB in CLOSE_WAIT count too: libmongoc keeps idle pooled clients with
        their sockets, so when SecantusDB dies the pool's idle ones hold a closed socket until
        next used (measured: 9 of 12 after cm-api stalled and SecantusDB was killed, steady).
        Any other connection the peer closed is left out, so it shows as a descriptor leak."""
        own = {"cm-server": self.ports["server"], "cm-api": self.ports["api"], "secantusdb": self.ports["mongo"]}
        peers = {self.ports["mongo"]: "mongodb", self.ports["api"]: "cm-api"}
        counts = {}
        for local, remote, state in self.processes[name].tcp_connections():
            peer = "clients" if local == own.get(name) else peers.get(remote, "kafka")
            if state == "01" or (state == "08" and peer == "mongodb"):
                counts[peer] = counts.get(peer, 0) + 1
        return counts

    def logs(self, lines=30):
        return "\n".join(f"--- {name}\n{p.tail(lines)}" for name, p in self.processes.items())


# -- make run -----------------------------------------------------------------------------------

class Stop(Exception):
    """SIGINT or SIGTERM reached the launcher."""


def stop_on_signal(number, frame):
    # Only the first signal counts: the stop that follows must run to its end, whatever else
    # arrives (make passes a group's SIGTERM on to its recipe a second time).
    for each in (signal.SIGINT, signal.SIGTERM):
        signal.signal(each, signal.SIG_IGN)
    raise Stop(signal.Signals(number).name)


def main():
    """`make run`: the whole shop on this machine until Ctrl-C or SIGTERM, with the variables of
    docs/RUNNING.md (PORT, CM_API_HOST, MONGO_PORT, KAFKA_BROKERS, MONGODB_URI, BIN_DIR, DATA_DIR).
    It writes each process's pid to DATA_DIR/shop.pids ("name pid" lines) for tools that
    signal them, and exits 130 after a signal, 1 when a process stopped by itself or would not
    start."""
    env = os.environ
    api_host = env.get("CM_API_HOST") or "localhost:3000"
    ports = {"server": int(env.get("PORT") or 3001), "api": int(api_host.rsplit(":", 1)[1]),
             "mongo": int(env.get("MONGO_PORT") or 27017)}
    data = env.get("DATA_DIR") or os.path.join(ROOT, ".data")
    shop = Shop(bin_dir=env.get("BIN_DIR") or os.path.join(ROOT, ".build", "release"), data=data, ports=ports,
                kafka_brokers=env.get("KAFKA_BROKERS") or None, mongodb_uri=env.get("MONGODB_URI") or None,
                log_level=env.get("LOG_LEVEL") or "info", quick_fetch=False)
    checks = [("server", "PORT"), ("api", "CM_API_HOST")] + ([] if shop.mongodb_uri else [("mongo", "MONGO_PORT")])
    for name, variable in checks:
        if listening(ports[name]):
            print(f"make run: port {ports[name]} is already in use (another 'make run'? see: "
                  f"ss -ltnp 'sport = :{ports[name]}'); set {variable} to use another", file=sys.stderr)
            return 1

    def up():
        with open(os.path.join(data, "shop.pids"), "w") as pids:
            pids.writelines(f"{name} {process.pid}\n" for name, process in shop.processes.items())
        port = ports["server"]
        return f"""
The shop is up: http://localhost:{port}/ (logs: {shop.log_dir}; Ctrl-C stops everything)

  curl -X POST http://localhost:{port}/buy -H 'Content-Type: application/json' \\
       -d '{{"username":"joe","userid":"005","price":"1195.30","timestamp":"2024-05-31T15:54:32.204Z"}}'
  curl http://localhost:{port}/getAllUserBuys/joe
  curl http://localhost:{port}/healthz"""

    return supervise(shop, "make run", up)


def supervise(shop, command, up):
    """Starts `shop` (a Shop or a Fleet) and runs it until one of its processes exits by itself or
    SIGINT or SIGTERM arrives, however many; then stops everything. `up()` is called once it is
    up and returns what to print. Returns the exit status: 130 after a signal, 1 when a process
    stopped by itself or would not start."""
    for each in (signal.SIGINT, signal.SIGTERM):
        signal.signal(each, stop_on_signal)
    status = 1
    try:
        shop.start(say=lambda line: print(line, flush=True))
        print(up(), flush=True)
        # Until one of them exits (left unreaped for its Popen to collect) or a signal comes.
        exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        name = next((n for n, p in shop.processes.items() if p.popen.pid == exited.si_pid), exited.si_pid)
        print(f"{name} stopped (status {exited.si_status}); the others stop too", flush=True)
    except Stop as received:
        print(f"{received}: stopping", flush=True)
        status = 130
    except RuntimeError as failure:
        print(f"{command}: {failure}", file=sys.stderr, flush=True)
    finally:
        for each in (signal.SIGINT, signal.SIGTERM):
            signal.signal(each, signal.SIG_IGN)
        shop.stop(say=lambda line: print(line, flush=True))
        print("stopped", flush=True)
    return status

if __name__ == "__main__":
    sys.exit(main())
