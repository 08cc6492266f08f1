"""Start or stop a real etcd inside a lab node's namespaces (molecule scenario etcd).

    lab_etcd.py start <lab> <node> <client-url> <data-dir>   # returns once etcd is healthy
    lab_etcd.py stop <data-dir>

etcd listens on the node's IP (every lab node reaches it over the underlay, as kubeasz's etcd
group); its peer port stays on the node's loopback. The pid is kept in <data-dir>/etcd.pid.
``ezctl lab down`` would stop it too (it ends every process in the lab's namespaces).
"""
import os
import signal
import subprocess
import sys
import time

from ezctl.lab import Lab


def start(lab_name, node, url, data_dir):
    os.makedirs(data_dir, exist_ok=True)
    lab = Lab(lab_name)
    peer = "http://127.0.0.1:2380"
    argv = lab.nsenter_argv(node) + [
        "etcd", "--name", node, "--data-dir", os.path.join(data_dir, "data"),
        "--listen-client-urls", url, "--advertise-client-urls", url,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{node}={peer}", "--logger", "zap", "--log-level", "warn"]
    with open(os.path.join(data_dir, "etcd.log"), "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    with open(os.path.join(data_dir, "etcd.pid"), "w", encoding="utf-8") as fh:
        fh.write(f"{proc.pid}\n")
    deadline = time.monotonic() + 30
    while lab.exec(node, ["etcdctl", "--endpoints", url, "endpoint", "health"], check=False).returncode:
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"etcd did not start in {node}; see {data_dir}/etcd.log")
        time.sleep(0.2)
    print(f"etcd {url} running in {lab_name}/{node}, pid {proc.pid}")


def stop(data_dir):
    try:
        with open(os.path.join(data_dir, "etcd.pid"), encoding="utf-8") as fh:
            pid = int(fh.read())
    except (OSError, ValueError):
        print("no etcd pid file: nothing to stop")
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for dummy in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    os.unlink(os.path.join(data_dir, "etcd.pid"))
    print(f"etcd pid {pid} stopped")


if __name__ == "__main__":
    if sys.argv[1:2] == ["start"] and len(sys.argv) == 6:
        start(*sys.argv[2:])
    elif sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        stop(sys.argv[2])
    else:
        sys.exit(__doc__)
