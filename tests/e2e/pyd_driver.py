"""python-diameter 0.9.0 as an interop client peer. Runs ONLY in .venv-pydiameter (its package
is also called `diameter`); the e2e tests start it as a subprocess.

stdin: JSON ``{"port": P, "host": "127.0.0.1", "steps": [...]}``; each step is
``{"cmd": "ccr", "session": S, "type": 1..4, "number": N, "context": "...", "subscriber":
"4179...", "msccs": [{"rg": 1, "rsu": {"cc_time": 60}, "usu": {...}, "reason": 3}],
"called": "tel:+41...", "sms_to": "...", "apn": "...", "action": 0, "aoc": 1,
"rsu": {...}, "drop": ["cc_request_number"]}`` or ``{"cmd": "acr", "session": S,
"record_type": 2, "record_number": 0, "extra_hex": "<encoded AVPs>"}``.
stdout: one JSON list, an answer summary per step.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

from diameter.message.avp import Avp
from diameter.message.avp.grouped import (
    GrantedServiceUnit,
    ImsInformation,
    MultipleServicesCreditControl,
    PsInformation,
    RecipientAddress,
    RecipientInfo,
    ServiceInformation,
    SmsInformation,
    SubscriptionId,
    UsedServiceUnit,
)
from diameter.message.commands import AccountingRequest, CreditControlRequest
from diameter.message.constants import (
    APP_DIAMETER_BASE_ACCOUNTING,
    APP_DIAMETER_CREDIT_CONTROL_APPLICATION,
    VENDOR_TGPP,
)
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def _units(cls: type, spec: dict | None):  # type: ignore[no-untyped-def]
    return cls(**spec) if spec is not None else None


def build_ccr(step: dict) -> CreditControlRequest:
    ccr = CreditControlRequest()
    ccr.header.is_proxyable = True
    ccr.session_id = step["session"]
    ccr.origin_host = b"pyd.icx.test"
    ccr.origin_realm = b"icx.test"
    ccr.destination_realm = b"icx.local"
    ccr.auth_application_id = 4
    ccr.service_context_id = step.get("context", "32260@3gpp.org")
    ccr.cc_request_type = step["type"]
    ccr.cc_request_number = step["number"]
    if step.get("subscriber"):
        ccr.subscription_id = [SubscriptionId(subscription_id_type=0,
                                              subscription_id_data=step["subscriber"])]
    if step.get("action") is not None:
        ccr.requested_action = step["action"]
    if step.get("aoc") is not None:
        ccr.aoc_request_type = step["aoc"]
    if step.get("rsu") is not None:
        ccr.requested_service_unit = GrantedServiceUnit(**step["rsu"])
    msccs = []
    for m in step.get("msccs", []):
        mscc = MultipleServicesCreditControl()
        if "rg" in m:
            mscc.rating_group = m["rg"]
        mscc.requested_service_unit = _units(GrantedServiceUnit, m.get("rsu"))
        if m.get("usu") is not None:
            mscc.used_service_unit = [UsedServiceUnit(**m["usu"])]
        if m.get("reason") is not None:
            mscc.reporting_reason = [m["reason"]]
        msccs.append(mscc)
    if msccs:
        ccr.multiple_services_indicator = 1
        ccr.multiple_services_credit_control = msccs
    si = None
    if step.get("called"):
        si = ServiceInformation(ims_information=ImsInformation(
            node_functionality=0, calling_party_address=[f"tel:+{step.get('subscriber', '')}"],
            called_party_address=step["called"]))
    elif step.get("sms_to"):
        si = ServiceInformation(sms_information=SmsInformation(recipient_info=[RecipientInfo(
            recipient_address=[RecipientAddress(address_type=1,
                                                address_data=step["sms_to"])])]))
    elif step.get("apn"):
        si = ServiceInformation(ps_information=PsInformation(called_station_id=step["apn"]))
    if si is not None:
        ccr.service_information = si
    for name in step.get("drop", []):
        setattr(ccr, name, None)
    return ccr


def build_acr(step: dict) -> AccountingRequest:
    acr = AccountingRequest()
    acr.header.is_proxyable = True
    acr.session_id = step["session"]
    acr.origin_host = b"pyd.icx.test"
    acr.origin_realm = b"icx.test"
    acr.destination_realm = b"icx.local"
    acr.accounting_record_type = step["record_type"]
    acr.accounting_record_number = step["record_number"]
    acr.acct_application_id = 3
    if step.get("extra_hex"):
        data = bytes.fromhex(step["extra_hex"])
        off = 0
        while off < len(data):
            length = int.from_bytes(data[off + 5:off + 8], "big")
            padded = (length + 3) & ~3
            acr.append_avp(Avp.from_bytes(data[off:off + padded]))
            off += padded
    return acr


def summary(ans) -> dict:  # type: ignore[no-untyped-def]
    out: dict = {"result_code": getattr(ans, "result_code", None),
                 "session_id": getattr(ans, "session_id", None)}
    for name in ("cc_request_type", "cc_request_number", "accounting_record_type",
                 "accounting_record_number", "check_balance_result", "validity_time"):
        v = getattr(ans, name, None)
        if v is not None:
            out[name] = v
    msccs = []
    for m in getattr(ans, "multiple_services_credit_control", None) or []:
        g = m.granted_service_unit
        msccs.append({
            "rg": m.rating_group, "result_code": m.result_code,
            "validity_time": m.validity_time,
            "final": m.final_unit_indication is not None,
            "granted": {k: v for k, v in (("cc_time", g.cc_time),
                                          ("cc_total_octets", g.cc_total_octets),
                                          ("cc_service_specific_units",
                                           g.cc_service_specific_units)) if v is not None}
            if g is not None else None})
    out["msccs"] = msccs
    gsu = getattr(ans, "granted_service_unit", None)
    if gsu is not None:
        out["granted"] = {"cc_time": gsu.cc_time, "cc_total_octets": gsu.cc_total_octets,
                          "cc_service_specific_units": gsu.cc_service_specific_units}
    cost = getattr(ans, "cost_information", None)
    if cost is not None and cost.unit_value is not None:
        out["cost"] = [cost.unit_value.value_digits, cost.unit_value.exponent or 0,
                       cost.currency_code]
    failed = getattr(ans, "failed_avp", None)
    if failed:
        out["failed_avp"] = True
    return out


def main() -> None:
    spec = json.loads(sys.stdin.read())
    node = Node("pyd.icx.test", "icx.test", vendor_ids=[VENDOR_TGPP])
    peer = node.add_peer(f"aaa://ocs.icx.local:{spec['port']};transport=tcp", "icx.local",
                         ip_addresses=[spec.get("host", "127.0.0.1")], is_persistent=True,
                         is_default=True)
    cc = SimpleThreadingApplication(APP_DIAMETER_CREDIT_CONTROL_APPLICATION,
                                    is_auth_application=True)
    acct = SimpleThreadingApplication(APP_DIAMETER_BASE_ACCOUNTING,
                                      is_acct_application=True)
    node.add_application(cc, [peer])
    node.add_application(acct, [peer])
    node.start()
    out = []
    try:
        cc.wait_for_ready(timeout=15)
        for step in spec["steps"]:
            if step["cmd"] == "ccr":
                ans = cc.send_request(build_ccr(step), timeout=15)
            else:
                ans = acct.send_request(build_acr(step), timeout=15)
            out.append(summary(ans))
    finally:
        print(json.dumps(out), flush=True)
        # node.stop() sends DPR at once but then joins its threads for ~10 s: let the DPR/DPA
        # exchange finish and leave without waiting for the joins.
        threading.Thread(target=node.stop, kwargs={"wait_timeout": 3}, daemon=True).start()
        time.sleep(1.2)
        os._exit(0)


if __name__ == "__main__":
    main()
