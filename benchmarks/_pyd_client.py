"""python-diameter 0.9.0 as a load client (baseline of benchmarks/diameter_load.py).

Runs ONLY under .venv-pydiameter (its package is also called `diameter`):
``.venv-pydiameter/bin/python benchmarks/_pyd_client.py PORT SECONDS THREADS`` prints one JSON
line ``{"answered": N, "seconds": S}``. Each thread sends CCR-Event SMS requests back to back
(python-diameter's send_request blocks per request, so threads give the concurrency).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

from diameter.message.avp.grouped import GrantedServiceUnit, SubscriptionId
from diameter.message.commands import CreditControlRequest
from diameter.message.constants import APP_DIAMETER_CREDIT_CONTROL_APPLICATION, VENDOR_TGPP
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication

logging.basicConfig(level=logging.ERROR)


def main() -> None:
    port, seconds, threads = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    node = Node("pydload.icx.test", "icx.test", vendor_ids=[VENDOR_TGPP])
    peer = node.add_peer(f"aaa://responder.icx.local:{port};transport=tcp", "icx.local",
                         ip_addresses=["127.0.0.1"], is_persistent=True, is_default=True)
    app = SimpleThreadingApplication(APP_DIAMETER_CREDIT_CONTROL_APPLICATION,
                                     is_auth_application=True)
    node.add_application(app, [peer])
    node.start()
    app.wait_for_ready(timeout=15)
    count = [0]
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def worker(n: int) -> None:
        i = 0
        while time.time() < stop_at:
            ccr = CreditControlRequest()
            ccr.session_id = f"pydload;{n};{i}"
            ccr.origin_host = b"pydload.icx.test"
            ccr.origin_realm = b"icx.test"
            ccr.destination_realm = b"icx.local"
            ccr.auth_application_id = 4
            ccr.service_context_id = "32274@3gpp.org"
            ccr.cc_request_type = 4
            ccr.cc_request_number = 0
            ccr.subscription_id = [SubscriptionId(subscription_id_type=0,
                                                  subscription_id_data="41790000001")]
            ccr.requested_action = 0
            ccr.requested_service_unit = GrantedServiceUnit(cc_service_specific_units=1)
            app.send_request(ccr, timeout=10)
            i += 1
            with lock:
                count[0] += 1

    t0 = time.time()
    ts = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 15)
    print(json.dumps({"answered": count[0], "seconds": round(time.time() - t0, 3)}),
          flush=True)
    threading.Thread(target=node.stop, kwargs={"wait_timeout": 2}, daemon=True).start()
    time.sleep(1.0)
    os._exit(0)


if __name__ == "__main__":
    main()
