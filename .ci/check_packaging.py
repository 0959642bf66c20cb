"""
Build the wheel, check its contents, install it in a fresh virtualenv and
check that twistd lists linkrouter and that the built-in plugins are
discovered.  Usage: python .ci/check_packaging.py WORKDIR
"""

import glob
import os
import subprocess
import sys
import zipfile

FORBIDDEN = ("twisted/__init__.py", "twisted/plugins/__init__.py", "dropin.cache")


def main(work: str) -> None:
    dist = os.path.join(work, "dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", dist], check=True)
    [wheel] = glob.glob(os.path.join(dist, "linkrouter-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    bad = [n for n in names if n.endswith(FORBIDDEN)]
    assert not bad, f"the wheel must not contain {bad}"
    assert "twisted/plugins/linkrouter_plugin.py" in names, names
    assert "linkrouter/default.yaml" in names, names

    venv = os.path.join(work, "venv")
    subprocess.run([sys.executable, "-m", "virtualenv", "-q", venv], check=True)
    python = os.path.join(venv, "bin", "python")
    subprocess.run([python, "-m", "pip", "install", "-q", wheel], check=True)
    outside = os.path.join(work, "elsewhere")  # not the source tree
    os.makedirs(outside, exist_ok=True)
    usage = subprocess.run(
        [os.path.join(venv, "bin", "twistd"), "--help"],
        cwd=outside,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "linkrouter" in usage, usage
    plugins = subprocess.run(
        [os.path.join(venv, "bin", "linkrouter"), "plugins"],
        cwd=outside,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print(plugins)
    assert "IProtocolPlugin:" in plugins and "INamerPlugin:" in plugins, plugins
    print("packaging: ok")


if __name__ == "__main__":
    main(sys.argv[1])
