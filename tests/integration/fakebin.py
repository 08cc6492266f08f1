"""Stand-ins for kubectl, ctr and docker (no API server or container runtime runs here), and image
tarballs in the `docker save` format that kubeasz's ezdown writes.

Each stand-in is a small Python program written into a bin directory; it logs every call to
`<tool>.calls` there and keeps its state in JSON files beside it:
- kubectl: the cluster's namespaces and objects (`cluster.json`); `apply` adds the manifest's
  objects, `delete` removes them, `diff` exits 1 while the manifest holds an object the cluster
  lacks (or with the code written to `diff.rc`), and saves what it compared to `diff.stdin`;
- ctr and docker: the image names per node hostname (`images.<hostname>.json`); `import`/`load`
  add the names a tarball holds, `tag` adds a name for an existing one.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

_COMMON = r'''
import json, socket, sys, tarfile
from pathlib import Path

HERE = Path(sys.argv[0]).resolve().parent
ARGS = sys.argv[1:]
with open(HERE / (Path(sys.argv[0]).name + ".calls"), "a", encoding="utf-8") as log:
    log.write(" ".join(ARGS) + "\n")


def load(name, default):
    path = HERE / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default


def save(name, data):
    (HERE / name).write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def fail(text, rc=1):
    print(text, file=sys.stderr)
    sys.exit(rc)


def tarball_names(path):
    """Image names in a `docker save` (manifest.json) or OCI (index.json) tarball."""
    with tarfile.open(path) as tar:
        members = tar.getnames()
        if "manifest.json" in members:
            return [t for m in json.load(tar.extractfile("manifest.json")) for t in m.get("RepoTags") or []]
        index = json.load(tar.extractfile("index.json"))
        return [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
'''

KUBECTL = _COMMON + r'''
import re

RESOURCES = {"Namespace": "namespace", "ClusterRole": "clusterrole.rbac.authorization.k8s.io",
             "ClusterRoleBinding": "clusterrolebinding.rbac.authorization.k8s.io",
             "ServiceAccount": "serviceaccount", "ConfigMap": "configmap", "DaemonSet": "daemonset.apps"}
SHORT = {"daemonset": "daemonset.apps", "daemonsets": "daemonset.apps"}


def options(args):
    """(namespace, the arguments without --kubeconfig X and -n X)."""
    rest, namespace = [], "default"
    it = iter(args)
    for arg in it:
        if arg == "--kubeconfig":
            next(it)
        elif arg == "-n":
            namespace = next(it)
        else:
            rest.append(arg)
    return namespace, rest


def manifest_objects(text):
    """(namespace, resource/name) of every document of a manifest."""
    objects = []
    for doc in re.split(r"^---$", text, flags=re.M):
        kind = re.search(r"^kind: (\S+)", doc, re.M)
        if kind:
            name = re.search(r"^  name: (\S+)", doc, re.M).group(1)
            ns = re.search(r"^  namespace: (\S+)", doc, re.M)
            objects.append((ns.group(1) if ns else "", RESOURCES[kind.group(1)] + "/" + name))
    return objects


def key(ns, ref):
    resource, name = ref.split("/", 1)
    return ns + "/" + SHORT.get(resource, resource) + "/" + name


cluster = load("cluster.json", {"objects": ["/namespace/default", "/namespace/kube-system"]})
objects = cluster["objects"]
ns, rest = options(ARGS)
verb = rest[0]
if verb == "get" and rest[1] == "namespace":
    if key("", "namespace/" + rest[2]) not in objects:
        fail('Error from server (NotFound): namespaces "%s" not found' % rest[2])
    print("namespace/" + rest[2])
elif verb == "get":  # get daemonsets -l app=flannel -o name
    prefix = ns + "/daemonset.apps/"
    print("\n".join("daemonset.apps/" + o[len(prefix):] for o in objects if o.startswith(prefix)))
elif verb == "diff":
    text = sys.stdin.read()
    (HERE / "diff.stdin").write_text(text, encoding="utf-8")
    rc_file = HERE / "diff.rc"
    rc = int(rc_file.read_text()) if rc_file.exists() else int(
        any(key(o_ns, ref) not in objects for o_ns, ref in manifest_objects(text)))
    if rc == 1:
        print("+        kubeasz.network/config-checksum: changed")
    if rc > 1:
        fail("error: the server is unreachable", rc)
    sys.exit(rc)
elif verb == "apply":
    for o_ns, ref in manifest_objects(Path(rest[2]).read_text(encoding="utf-8")):
        k = key(o_ns, ref)
        print(ref + (" configured" if k in objects else " created"))
        if k not in objects:
            objects.append(k)
elif verb == "delete":
    for ref in (a for a in rest[1:] if not a.startswith("--")):
        k = key(ns, ref)
        if k in objects:
            objects.remove(k)
            print('%s "%s" deleted' % tuple(k.split("/", 1)[1].split("/")))
elif verb == "rollout":
    print('daemon set "%s" successfully rolled out' % rest[2].split("/")[1])
else:
    fail("fake kubectl: unexpected " + " ".join(ARGS), 2)
save("cluster.json", cluster)
'''

_RUNTIME = _COMMON + r'''
STATE = "images.%s.json" % socket.gethostname()
images = load(STATE, [])


def add(names):
    images.extend(n for n in names if n not in images)
    save(STATE, images)


def tag(src, dst):
    if src not in images:
        fail('image "%s": not found' % src)
    add([dst])
'''

CTR = _RUNTIME + r'''
args = ARGS[2:] if ARGS[:2] == ["-n", "k8s.io"] else fail("fake ctr: expected -n k8s.io first", 2)
if args == ["images", "ls", "-q"]:
    print("\n".join(images))
elif args[:2] == ["images", "import"]:
    names = tarball_names(args[2])
    print("\n".join("unpacking %s (sha256:...)...done" % n for n in names))
    add(names)
elif args[:2] == ["images", "tag"]:
    tag(args[2], args[3])
    print(args[3])
else:
    fail("fake ctr: unexpected " + " ".join(ARGS), 2)
'''

DOCKER = _RUNTIME + r'''
if ARGS == ["images"]:
    print("REPOSITORY   TAG   IMAGE ID   CREATED   SIZE")
    for name in images:
        repo, _sep, version = name.rpartition(":")
        print("%s   %s   0123456789ab   2 days ago   10.5MB" % (repo, version))
elif ARGS[:2] == ["load", "-i"]:
    names = tarball_names(ARGS[2])
    print("\n".join("Loaded image: " + n for n in names))
    add(names)
elif ARGS[0] == "tag":
    tag(ARGS[1], ARGS[2])
else:
    fail("fake docker: unexpected " + " ".join(ARGS), 2)
'''

TOOLS = {"kubectl": KUBECTL, "ctr": CTR, "docker": DOCKER}


def install(bindir: Path, *tools: str) -> None:
    """Write the named stand-ins into bindir (run by this Python, which lab nodes see too)."""
    bindir.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        path = bindir / tool
        path.write_text(f"#!{sys.executable}\n" + TOOLS[tool], encoding="utf-8")
        path.chmod(0o755)


def calls(bindir: Path, tool: str) -> list[str]:
    path = bindir / f"{tool}.calls"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def images(bindir: Path, node: str) -> list[str]:
    """The image names the fake runtime holds on a lab node (its hostname)."""
    path = bindir / f"images.{node}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def image_tarball(path: Path, names: list[str]) -> Path:
    """A `docker save` tarball holding one tiny image per name (a layer with one file)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as layer_tar:
        _add(layer_tar, "hello.txt", b"a tiny image layer\n")
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    manifest = []
    with tarfile.open(path, "w") as tar:
        for name in names:
            config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"name": name}},
                                 "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
            config_name = hashlib.sha256(config).hexdigest() + ".json"
            layer_name = diff_id.split(":")[1] + "/layer.tar"
            _add(tar, config_name, config)
            if layer_name not in tar.getnames():
                _add(tar, layer_name, layer_bytes)
            manifest.append({"Config": config_name, "RepoTags": [name], "Layers": [layer_name]})
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    return path
