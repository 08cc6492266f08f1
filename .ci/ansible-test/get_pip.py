"""Offline stand-in for get-pip.py, which ansible-test downloads from a host this machine cannot reach.

ansible-test runs it inside each virtualenv it makes; pip comes from the interpreter's own
ensurepip (run as a subprocess so the machine's pip configuration still applies) and is then
upgraded from PyPI like the real script would.
"""
import subprocess
import sys

UNSUPPORTED = {"--no-setuptools", "--no-wheel"}


def main():
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    args = [arg for arg in sys.argv[1:] if arg not in UNSUPPORTED]
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + args)


if __name__ == "__main__":
    main()
