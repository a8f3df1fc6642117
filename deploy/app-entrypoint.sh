#!/bin/sh
# The app image's entrypoint: `abono <command>` (serve, worker, migrate, ...).
#
# The engine's callbacks (/internal/actions, /internal/nlg) must listen where the engines, in
# their own containers, reach them, and nowhere else: ABONO_INTERNAL_HOST is this container's
# address on the network it shares with them (docker-compose.yml's `backend`, an internal
# network). The address is found here, at start, because each replica has its own: it is the
# local address this container uses to reach ABONO_INTERNAL_PEER, a service on that network
# only (connecting a UDP socket sends nothing). An ABONO_INTERNAL_HOST set explicitly wins.
set -eu
if [ -z "${ABONO_INTERNAL_HOST:-}" ] && [ -n "${ABONO_INTERNAL_PEER:-}" ]; then
  ABONO_INTERNAL_HOST=$(python -c '
import os, socket
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
    probe.connect((os.environ["ABONO_INTERNAL_PEER"], 9))
    print(probe.getsockname()[0])
')
  export ABONO_INTERNAL_HOST
fi
exec abono "$@"
