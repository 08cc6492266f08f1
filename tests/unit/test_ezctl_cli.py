"""ezctl command line without root: clusters, checkout, setup command construction, errors."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ezctl import cli


class FakeRunner:
    def __init__(self, rc=0):
        self.calls = []
        self.rc = rc

    def __call__(self, argv, cwd):
        self.calls.append((list(argv), cwd))
        return self.rc


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "06.network.yml").write_text("---\n")
    example = tmp_path / "clusters" / "example"
    example.mkdir(parents=True)
    (example / "hosts").write_text("[all:vars]\ncluster_dir=\"{{ base_dir }}/clusters/_cluster_name_\"\n")
    (example / "config.yml").write_text("FLANNEL_BACKEND: vxlan\n")
    return tmp_path


def run(base, *argv, runner=None):
    return cli.main(["--base", str(base), *argv], runner=runner or FakeRunner())


def test_new_copies_example_and_refuses_existing(base, capsys):
    assert run(base, "new", "k1") == 0
    hosts = (base / "clusters" / "k1" / "hosts").read_text()
    assert "clusters/k1" in hosts and "_cluster_name_" not in hosts
    assert (base / "clusters" / "k1" / "config.yml").read_text() == "FLANNEL_BACKEND: vxlan\n"
    assert run(base, "new", "k1") == 1
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["Bad", "../x", "a b", "", "x" * 40])
def test_new_rejects_bad_names(base, name, capsys):
    assert run(base, "new", name) == 1
    assert "invalid cluster name" in capsys.readouterr().err


def test_new_without_example(tmp_path, capsys):
    (tmp_path / "playbooks").mkdir()
    assert cli.main(["--base", str(tmp_path), "new", "k1"], runner=FakeRunner()) == 1
    assert "template" in capsys.readouterr().err


def test_a_reader_that_stops_early_ends_ezctl_quietly(base):
    """`ezctl list | head -0`: no traceback, the exit code of a command killed by SIGPIPE."""
    assert run(base, "new", "k1") == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before ezctl writes
    try:
        proc = subprocess.run([sys.executable, "-m", "ezctl", "--base", str(base), "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, cwd=Path(cli.__file__).parents[1], timeout=60,
                              check=False)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_list_and_checkout(base, capsys):
    run(base, "new", "k1")
    run(base, "new", "k2")
    capsys.readouterr()
    assert run(base, "checkout", "k2") == 0
    assert run(base, "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert "k2 (current)" in out and "k1" in out and "example" in out
    assert run(base, "checkout", "nope") == 1
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("step", ["06", "network"])
def test_setup_runs_exact_command(base, step, capsys):
    run(base, "new", "k1")
    capsys.readouterr()
    runner = FakeRunner()
    assert run(base, "setup", "k1", step, runner=runner) == 0
    (argv, cwd), = runner.calls
    assert cwd == str(base.resolve())
    assert Path(argv[0]).name == "ansible-playbook"
    assert argv[1:] == ["-i", "clusters/k1/hosts", "-e", "@clusters/k1/config.yml",
                        "playbooks/06.network.yml"]
    assert capsys.readouterr().out.startswith("+ ")


def test_setup_extra_args_and_exit_code(base):
    run(base, "new", "k1")
    runner = FakeRunner(rc=2)
    assert run(base, "setup", "k1", "06", "--", "--check", "--diff", "-l", "node1",
               runner=runner) == 2
    assert runner.calls[0][0][-4:] == ["--check", "--diff", "-l", "node1"]


def test_setup_prefers_ansible_playbook_next_to_python(base, monkeypatch, tmp_path):
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "ansible-playbook").write_text("#!/bin/sh\n")
    monkeypatch.setattr(cli.sys, "executable", str(bindir / "python"))
    run(base, "new", "k1")
    runner = FakeRunner()
    run(base, "setup", "k1", "06", runner=runner)
    assert runner.calls[0][0][0] == str(bindir / "ansible-playbook")


@pytest.mark.parametrize("args, message", [
    (("setup", "nope", "06"), "cluster nope not found"),
    (("setup", "k1", "07"), "unknown step"),
    (("setup", "k1", "all"), "unknown step"),
])
def test_setup_errors(base, args, message, capsys):
    run(base, "new", "k1")
    runner = FakeRunner()
    assert run(base, *args, runner=runner) == 1
    assert message in capsys.readouterr().err
    assert runner.calls == []


def test_setup_missing_playbook(base, capsys):
    run(base, "new", "k1")
    (base / "playbooks" / "06.network.yml").unlink()
    assert run(base, "setup", "k1", "06") == 1
    assert "06.network.yml not found" in capsys.readouterr().err


def test_base_from_env_and_cwd(base, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KUBEASZ_BASE", raising=False)
    monkeypatch.chdir(base)
    assert cli.main(["list"], runner=FakeRunner()) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["list"], runner=FakeRunner()) == 1
    assert "no base directory" in capsys.readouterr().err
    monkeypatch.setenv("KUBEASZ_BASE", str(base))
    assert cli.main(["list"], runner=FakeRunner()) == 0
    assert "example" in capsys.readouterr().out


def test_base_option_after_subcommand(base, capsys):
    assert cli.main(["list", "--base", str(base)], runner=FakeRunner()) == 0
    assert "example" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--help"], ["setup", "--help"], ["lab", "--help"],
                                  ["lab", "up", "--help"], ["lab", "pod", "add", "--help"],
                                  ["lab", "exec", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0
    assert "usage: ezctl" in capsys.readouterr().out


def test_lab_exec_without_command(capsys):
    assert cli.main(["lab", "exec", "k1", "node1"]) == 1
    assert "no command" in capsys.readouterr().err


def test_lab_status_of_missing_lab(tmp_path, capsys):
    assert cli.main(["lab", "status", "k1", "--lab-root", str(tmp_path)]) == 3
    assert "down" in capsys.readouterr().out


def test_lab_bad_name(capsys):
    assert cli.main(["lab", "status", "Bad/Name"]) == 1
    assert "invalid cluster name" in capsys.readouterr().err


def _parsers(parser):
    """Every parser of the command line with its command path: ezctl, ezctl lab, ezctl lab up, ..."""
    yield parser.prog, parser
    for action in parser._actions:  # pylint: disable=protected-access
        if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_command_and_argument_has_help():
    undocumented = []
    for prog, parser in _parsers(cli.build_parser()):
        for action in parser._actions:  # pylint: disable=protected-access
            if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
                undocumented += ["%s %s" % (prog, c.dest) for c in action._choices_actions if not c.help]
            elif action.help is None or (action.help == argparse.SUPPRESS and action.dest not in ("base", "lab_root")):
                undocumented.append("%s %s" % (prog, action.dest))
    assert undocumented == []


def test_version_is_the_collections(capsys):
    galaxy = yaml.safe_load((Path(__file__).resolve().parents[2] / "galaxy.yml").read_text())
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.split()[:2] == ["ezctl", galaxy["version"]]


def test_the_package_and_the_collection_have_one_version():
    top = Path(__file__).resolve().parents[2]
    galaxy = yaml.safe_load((top / "galaxy.yml").read_text())
    project = re.search(r'^version = "([^"]+)"', (top / "pyproject.toml").read_text(), re.M)
    assert project and project.group(1) == galaxy["version"]


# --------------------------------------------------------------------------- a kubeasz home
KUBEASZ_HOSTS = ('[kube_node]\n192.168.1.3\n[all:vars]\nCLUSTER_NETWORK="calico"\nbase_dir="/etc/kubeasz"\n'
                 'cluster_dir="{{ base_dir }}/clusters/_cluster_name_"\n')


@pytest.fixture
def kubeasz_home(tmp_path: Path) -> Path:
    """kubeasz's home layout: playbooks/, example/ (config.yml, hosts.multi-node, hosts.allinone)."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "06.network.yml").write_text("---\n")
    (tmp_path / "example").mkdir()
    (tmp_path / "example" / "hosts.multi-node").write_text(KUBEASZ_HOSTS)
    (tmp_path / "example" / "hosts.allinone").write_text("[kube_node]\n127.0.0.1\n")
    (tmp_path / "example" / "config.yml").write_text('K8S_VER: "__k8s_ver__"\nflannel_ver: "__flannel__"\n')
    return tmp_path


def test_new_in_a_kubeasz_home_takes_hosts_multi_node(kubeasz_home, capsys):
    assert run(kubeasz_home, "new", "k8s-01") == 0
    cdir = kubeasz_home / "clusters" / "k8s-01"
    assert sorted(p.name for p in cdir.iterdir()) == ["config.yml", "hosts"]
    hosts = (cdir / "hosts").read_text()
    # the new cluster's base_dir is the base it was made in, and its own cluster_dir
    assert f'base_dir="{kubeasz_home}"' in hosts and 'base_dir="/etc/kubeasz"' not in hosts
    assert 'cluster_dir="{{ base_dir }}/clusters/k8s-01"' in hosts
    err = capsys.readouterr().err
    assert "__flannel__, __k8s_ver__" in err and "kubeasz's own `ezctl new`" in err


def test_new_writes_the_base_into_our_example_too(base):
    (base / "clusters" / "example" / "hosts").write_text('[all:vars]\nbase_dir="/etc/kubeasz"\n')
    assert run(base, "new", "k1") == 0
    assert (base / "clusters" / "k1" / "hosts").read_text() == f'[all:vars]\nbase_dir="{base}"\n'


def test_new_without_either_template_names_both(tmp_path, capsys):
    (tmp_path / "playbooks").mkdir()
    assert run(tmp_path, "new", "k1") == 1
    err = capsys.readouterr().err
    assert "clusters/example not found" in err and "hosts.multi-node" in err


def kubeasz_ezctl(home: Path) -> Path:
    script = home / "ezctl"
    script.write_text("#!/bin/bash\necho kubeasz\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("argv", [["setup", "k8s-01", "all"], ["setup", "k8s-01", "06"], ["new", "k8s-02"],
                                  ["renew-ca", "k8s-01"], ["start", "k8s-01"], ["add-node", "k8s-01", "10.0.0.9"],
                                  ["list"]])
def test_a_kubeasz_home_runs_kubeasz_s_own_ezctl(kubeasz_home, argv, monkeypatch, capsys):
    monkeypatch.setenv(cli.PASSED_ENV, "")  # main() sets it for kubeasz's ezctl: restored afterwards
    script = kubeasz_ezctl(kubeasz_home)
    runner = FakeRunner(rc=3)
    assert run(kubeasz_home, *argv, runner=runner) == 3
    assert runner.calls == [([str(script), *argv], str(kubeasz_home))]   # --base is ours: not passed on
    assert "to kubeasz's own" in capsys.readouterr().err
    assert not (kubeasz_home / "clusters" / "k8s-02").exists()


@pytest.mark.parametrize("argv", [["lab", "status", "nolab"], ["net", "status", "nope"], ["reset-net", "nope"]])
def test_commands_kubeasz_has_not_stay_ours(kubeasz_home, argv, monkeypatch):
    monkeypatch.setenv(cli.PASSED_ENV, "")  # main() sets it for kubeasz's ezctl: restored afterwards
    kubeasz_ezctl(kubeasz_home)
    runner = FakeRunner()
    run(kubeasz_home, *argv, runner=runner)
    assert all("ezctl" != Path(call[0][0]).name for call in runner.calls)


def test_never_passed_back(kubeasz_home, monkeypatch, capsys):
    kubeasz_ezctl(kubeasz_home)
    monkeypatch.setenv(cli.PASSED_ENV, "1")
    runner = FakeRunner()
    assert run(kubeasz_home, "list", runner=runner) == 0
    assert runner.calls == []


def test_no_kubeasz_ezctl_no_pass_through(kubeasz_home, monkeypatch):
    monkeypatch.setenv(cli.PASSED_ENV, "")  # main() sets it for kubeasz's ezctl: restored afterwards
    runner = FakeRunner()
    assert run(kubeasz_home, "setup", "k8s-01", "all", runner=runner) == 1
    assert runner.calls == []
