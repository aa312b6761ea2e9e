"""An interop client built on python-diameter's Node/Application API (out of process).

Run ONLY with the python-diameter venv (it imports as ``diameter``, like our package):

    .venv-pydiameter/bin/python tests/interop/pydiameter_client.py PORT [--idle 1] [--ccr]

Connects to ocs.icx.local at 127.0.0.1:PORT, completes CER/CEA, waits for DWR/DWA (its idle
timer set to --idle seconds), optionally sends one CCR-Initial, then stops (DPR/DPA) and prints
ONE JSON line: {"cea": bool, "dwa": int, "ccr_result": int|null, "dpa": bool, "error": str|null}.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--idle", type=int, default=1)
    ap.add_argument("--ccr", action="store_true")
    ap.add_argument("--timeout", type=float, default=15.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from diameter.message import constants
    from diameter.message.commands import CreditControlRequest
    from diameter.node import Node
    from diameter.node.application import SimpleThreadingApplication

    result: dict[str, object] = {
        "cea": False,
        "dwa": 0,
        "ccr_result": None,
        "dpa": False,
        "error": None,
    }
    dwa_seen = threading.Event()

    class RecordingNode(Node):
        def receive_dwa(self, conn, message):  # type: ignore[no-untyped-def]
            result["dwa"] = int(result["dwa"]) + 1  # type: ignore[call-overload]
            dwa_seen.set()
            super().receive_dwa(conn, message)

        def receive_dpa(self, conn, message):  # type: ignore[no-untyped-def]
            result["dpa"] = message.result_code == constants.E_RESULT_CODE_DIAMETER_SUCCESS
            super().receive_dpa(conn, message)

    node = RecordingNode("client.interop.test", "interop.test", vendor_ids=[10415])
    node.idle_timeout = args.idle
    node.wakeup_interval = 1  # timers are checked this often (its smallest timer step)
    peer = node.add_peer(
        f"aaa://ocs.icx.local:{args.port};transport=tcp",
        "icx.local",
        ip_addresses=["127.0.0.1"],
        is_persistent=True,
        is_default=True,
    )
    peer.idle_timeout = args.idle
    app = SimpleThreadingApplication(
        constants.APP_DIAMETER_CREDIT_CONTROL_APPLICATION, is_auth_application=True
    )
    node.add_application(app, [peer])
    node.start()
    try:
        app.wait_for_ready(timeout=int(args.timeout))
        result["cea"] = True
        if not dwa_seen.wait(args.timeout):
            raise TimeoutError("no DWA within the timeout")
        if args.ccr:
            ccr = CreditControlRequest()
            ccr.session_id = node.session_generator.next_id()
            ccr.origin_host = node.origin_host.encode()
            ccr.origin_realm = node.realm_name.encode()
            ccr.destination_realm = b"icx.local"
            ccr.auth_application_id = constants.APP_DIAMETER_CREDIT_CONTROL_APPLICATION
            ccr.service_context_id = "32251@3gpp.org"
            ccr.cc_request_type = constants.E_CC_REQUEST_TYPE_INITIAL_REQUEST
            ccr.cc_request_number = 0
            ccr.add_subscription_id(
                subscription_id_type=constants.E_SUBSCRIPTION_ID_TYPE_END_USER_E164,
                subscription_id_data="41790000001",
            )
            answer = app.send_request(ccr, timeout=int(args.timeout))
            result["ccr_result"] = answer.result_code
    except Exception as exc:  # reported in the JSON line; the test asserts on it
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        t0 = time.time()
        node.stop(wait_timeout=5)
        result["stop_seconds"] = round(time.time() - t0, 3)
    print(json.dumps(result), flush=True)
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
