"""The container images, built and run here without a Docker engine (make images).

Debian 12's podman and buildah build the project's Dockerfile unchanged: its runtime stage starts
from a base made here with debootstrap from Debian's archive (no registry is reachable on these
machines), and its Swift stage is replaced by binaries built on the host (`--build-context
build=DIR`, DIR/out/cm-server and DIR/out/cm-api: the objects of the host's build linked again
with the Swift runtime inside, as the Swift stage links them). podman's settings are the
project's own (images/containers.conf).

`python -m shoptest.images [debug|release]` (make images: release) builds the base once, then
both images, and prints their IDs. run_command() is how the launcher runs a service from its image: uid 10001 from
the image, read-only root file system, every capability dropped, no new privileges, credentials
as files in SECRETS_DIR.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

from shoptest import ROOT

CONF = os.path.join(ROOT, "images", "containers.conf")
BASE = "localhost/scalable-shop/debian:bookworm-slim"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What useradd writes into /etc/shadow and what the layers' dates are: fixed, so two builds from
# the same inputs give the same image.
SOURCE_DATE_EPOCH = "0"
SERVICES = ("cm-server", "cm-api")
# The variables a service gets as files in SECRETS_DIR, never in its environment (as the charts
# give them): the file is the key in lowercase with dashes (docs/CONTRACT.md).
SECRET_VARIABLES = {"KAFKA_USERNAME", "KAFKA_PASSWORD", "MONGODB_URI", "AUTH_JWT_SECRET", "AUTH_JWT_SECRET_NEXT",
                    "CM_API_SERVICE_TOKEN", "CM_API_SERVICE_TOKEN_NEXT"}
SECRETS_DIR = "/etc/scalable-shop/secrets"


def environment():
    return dict(os.environ, CONTAINERS_CONF=CONF)


def podman(*arguments, capture=True, timeout=900):
    done = subprocess.run(["podman", *arguments], env=environment(), capture_output=capture, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(arguments)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout.strip() if capture else ""


def exists(image):
    return subprocess.run(["podman", "image", "exists", image], env=environment()).returncode == 0


def image_id(image):
    return podman("image", "inspect", "--format", "{{.Id}}", image)


def tag(service):
    """The image's local name: the chart's repository's last part and the chart's appVersion."""
    import yaml

    with open(os.path.join(ROOT, "helm", service, "Chart.yaml")) as f:
        version = yaml.safe_load(f)["appVersion"]
    return f"localhost/scalable-shop/{service}:{version}"


def base_image(say=print):
    """Debian 12 minbase from debootstrap, without apt lists, docs, man pages and locales, packed
    as a sorted tar with fixed mtimes and owners by number; made once per machine."""
    if exists(BASE):
        return image_id(BASE)
    work = tempfile.mkdtemp(prefix="image-base.")
    try:
        rootfs, context = os.path.join(work, "rootfs"), os.path.join(work, "context")
        os.makedirs(context)
        say(f"debootstrap bookworm from {MIRROR} (about a minute)")
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", rootfs, MIRROR], check=True,
                       capture_output=True, timeout=900)
        for pattern in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/info",
                        "usr/share/locale", "var/log"):
            path = os.path.join(rootfs, pattern)
            for entry in os.listdir(path) if os.path.isdir(path) else []:
                target = os.path.join(path, entry)
                shutil.rmtree(target) if os.path.isdir(target) and not os.path.islink(target) else os.remove(target)
        aux = os.path.join(rootfs, "var/cache/ldconfig/aux-cache")
        if os.path.exists(aux):
            os.remove(aux)
        subprocess.run(["tar", "--sort=name", "--numeric-owner", f"--mtime=@{SOURCE_DATE_EPOCH}", "--clamp-mtime",
                        "-C", rootfs, "-cf", os.path.join(context, "rootfs.tar"), "."], check=True)
        podman("build", "--pull=never", "--timestamp", SOURCE_DATE_EPOCH, "-f",
               os.path.join(ROOT, "images", "Containerfile.base"), "-t", BASE, context, capture=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image_id(BASE)


# Foundation's static parts, in one linker group: they refer to each other in a circle, and
# objects compiled by a normal build autolink only Foundation's shared libraries.
STATIC_FOUNDATION = ["FoundationInternationalization", "_FoundationICU", "FoundationEssentials",
                     "_FoundationCollections", "_FoundationCShims", "CoreFoundation", "Foundation",
                     "swiftSynchronization", "swift_RegexParser", "swift_StringProcessing"]


def link_command(configuration, service):
    """SwiftPM's own link command for `service` in `configuration` (debug or release), read from
    the build manifest it wrote (.build/<configuration>.yaml)."""
    with open(os.path.join(ROOT, ".build", f"{configuration}.yaml")) as f:
        lines = iter(f)
        for line in lines:
            if line.startswith(f'  "C.{service}-') and line.rstrip().endswith(f'-{configuration}.exe":'):
                for inner in lines:
                    if inner.startswith("    args: "):
                        return json.loads(inner[len("    args: "):])
    raise RuntimeError(f"no link command for {service} in .build/{configuration}.yaml: build it first")


def binaries_context(configuration, folder):
    """DIR/out/<service> for --build-context build=DIR: each service linked again from the objects
    the normal build made, with the Swift runtime inside (-static-stdlib, as the Dockerfile's
    Swift stage links them: the runtime image has no Swift), then stripped. Nothing in .build
    changes: SwiftPM's own link command, another output (a static build in the same folder would
    recompile modules under other flags, and the next normal build would not link)."""
    out = os.path.join(folder, "out")
    os.makedirs(out, exist_ok=True)
    for service in SERVICES:
        linked = os.path.join(folder, f"{service}.unstripped")
        command = link_command(configuration, service)
        command[command.index("-o") + 1] = linked
        command += ["-static-stdlib", "-Xlinker", "--start-group"]
        for library in STATIC_FOUNDATION:
            command += ["-Xlinker", f"-l{library}"]
        command += ["-Xlinker", "--end-group"]
        subprocess.run(command, check=True, capture_output=True, timeout=600)
        if "libswiftCore" in subprocess.run(["ldd", linked], capture_output=True, text=True, check=True).stdout:
            raise RuntimeError(f"{service} still loads the Swift runtime from the toolchain")
        subprocess.run(["strip", "-o", os.path.join(out, service), linked], check=True)
        os.remove(linked)
    return folder


def build(service, binaries, image=None, no_cache=False):
    """Builds `service`'s target of the Dockerfile on the local base with the binaries in
    `binaries` (a binaries_context folder); returns the image ID."""
    image = image or tag(service)
    arguments = ["build", "--pull=never", "--timestamp", SOURCE_DATE_EPOCH,
                 "--build-arg", f"RUNTIME_IMAGE={BASE}", "--build-arg", f"SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}",
                 "--build-context", f"build={binaries}", "--target", service, "-t", image,
                 "-f", os.path.join(ROOT, "Dockerfile")]
    if no_cache:
        arguments.append("--no-cache")
    podman(*arguments, ROOT)
    return image_id(image)


def build_all(configuration, say=print):
    """The base (once), then both images from the `configuration` build (debug or release):
    {service: image ID}."""
    base_image(say)
    folder = tempfile.mkdtemp(prefix="image-binaries.")
    try:
        binaries_context(configuration, folder)
        return {service: build(service, folder) for service in SERVICES}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_command(service, image, env, folder):
    """(argv, container name) that run `service` from `image` in the foreground as a pod would:
    the image's user (10001), read-only root file system, all capabilities dropped, no new
    privileges, the host's network (the local Kafka and MongoDB stand-ins listen on loopback),
    the secrets of `env` as files in SECRETS_DIR and the rest as environment variables. SIGTERM
    to the command reaches the service (podman run forwards signals)."""
    name = f"shoptest-{service}-{uuid.uuid4().hex[:8]}"
    secrets = os.path.join(folder, f"{name}-secrets")
    os.makedirs(secrets)
    os.chmod(secrets, 0o755)
    argv = ["podman", "run", "--rm", "--name", name, "--pull=never", "--network", "host", "--read-only",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "-v", f"{secrets}:{SECRETS_DIR}:ro",
            "-e", f"SECRETS_DIR={SECRETS_DIR}"]
    for key, value in sorted(env.items()):
        if key in SECRET_VARIABLES:
            path = os.path.join(secrets, key.lower().replace("_", "-"))
            with open(path, "w") as f:
                f.write(str(value))
            os.chmod(path, 0o444)
        else:
            argv += ["-e", f"{key}={value}"]
    return argv + [image], name


def main():
    configuration = sys.argv[1] if len(sys.argv) > 1 else "release"
    for service, identifier in build_all(configuration).items():
        size = podman("image", "inspect", "--format", "{{.Size}}", tag(service))
        print(f"{tag(service)}  {identifier[:12]}  {int(size) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
