#!/usr/bin/env bash
# Print the Python that builds the project's virtual environment: the first python3 >= 3.11
# with venv support.  As root, it must also run for an unprivileged user (the server drops to
# the service user, which still imports the standard library lazily): a Python kept under
# /root (pyenv) does not, Debian's /usr/bin/python3 does.
set -uo pipefail
check='import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 11) else 1)'
stdlib='import os, sysconfig; os.listdir(sysconfig.get_paths()["stdlib"])'
for cand in python3 /usr/bin/python3 python3.13 python3.12 python3.11; do
    path=$(command -v "$cand" 2>/dev/null) || continue
    real=$(readlink -f "$path")
    "$real" -c "$check" >/dev/null 2>&1 || continue
    if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
        setpriv --reuid=65534 --regid=65534 --clear-groups "$real" -c "$stdlib" >/dev/null 2>&1 || continue
    fi
    echo "$real"
    exit 0
done
echo "no usable python3 >= 3.11 with venv (as root: one every user can run); install python3-venv" >&2
exit 1
