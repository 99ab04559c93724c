"""moto's server, answering one request at a time.

`moto_server` serves requests on several threads and does not make DynamoDB conditional writes
atomic across them, so two concurrent conditional puts can both succeed. Real DynamoDB
guarantees one winner, and the tests of our claims and leases rely on that; serving requests
one at a time gives moto the same guarantee.

usage: python moto_serial.py HOST PORT
"""

import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
