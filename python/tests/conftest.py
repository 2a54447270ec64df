"""A real cluster for the Python client's tests: `ippctl cluster start -n 4` in a private
profile, with the sample plugin arith pushed, stopped at the end of the session."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

BIN = os.environ.get("IPP_BIN_DIR", "")
PLUGINS = os.environ.get("IPP_PLUGIN_DIR", "")


def ippctl(profile, *args, check=True):
    return subprocess.run([os.path.join(BIN, "ippctl"), "--profile-dir", profile, *args],
                          check=check, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def cluster():
    if not BIN or not os.path.exists(os.path.join(BIN, "ippctl")):
        pytest.skip("IPP_BIN_DIR does not name a build's bin directory (run through ctest)")
    profile = tempfile.mkdtemp(prefix="ipp-python-")
    try:
        ippctl(profile, "cluster", "start", "-n", "4")
        ippctl(profile, "push", os.path.join(PLUGINS, "arith.so"))
        yield profile
    finally:
        ippctl(profile, "cluster", "stop", check=False)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture()
def rc(cluster):
    import ipp
    client = ipp.Client(profile_dir=cluster)
    yield client
    client.close()


@pytest.fixture()
def arith(rc):
    return rc.plugin("arith")
