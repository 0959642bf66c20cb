#!/bin/sh
# Installs the real services the tests run against.  Nothing is started
# here: tests/test_namers_serversets.py starts (and stops) its own private
# ZooKeeper on a free loopback port from this installation.
#
#   ZooKeeper: Debian's `zookeeper` package (the server jars in
#   /usr/share/java, plus a JRE pulled in as a dependency); not
#   `zookeeperd`, which would start a system-wide server on port 2181.
set -e
if [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; then
    echo "services: ZooKeeper already installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "services: not root: cannot install ZooKeeper; its tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
echo "services: ZooKeeper installed: $(dpkg-query -W -f='${Version}' zookeeper)"
