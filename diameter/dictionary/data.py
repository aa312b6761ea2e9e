"""The Diameter dictionary AS DATA: declared once here, parsed into tables by dictionary/__init__.

Sources (protocol-facts.md): base RFC 6733 (A5, A10, A11), credit control RFC 4006/8506
(B1-B4), RAR/ASR/STR (D), 3GPP TS 32.299 Ro/Rf vendor 10415 (C3-C6), TS 29.061 3GPP-* AVPs.
Gx (16777238) and S6a (16777251) commands are known by code only (permissive grammars) so
their traffic decodes; their AVPs are not modelled.

AVPS columns: code, vendor (0 or 10415), name, type, M rule (M = must, m = may, - = must not).
GROUPS / COMMANDS use RFC 6733 §3.2 ABNF: <X> fixed, {X} required, [X] optional, n*m prefix
for counts, *[AVP] = other AVPs allowed, !X = must not appear (5008).
"""

from __future__ import annotations

AVPS = """
# --- RFC 6733 base (protocol-facts A11) and RADIUS-reused codes
1     0 User-Name                       UTF8String        M
25    0 Class                           OctetString       M
27    0 Session-Timeout                 Unsigned32        M
30    0 Called-Station-Id               UTF8String        M
31    0 Calling-Station-Id              UTF8String        M
33    0 Proxy-State                     OctetString       M
44    0 Acct-Session-Id                 OctetString       M
50    0 Acct-Multi-Session-Id           UTF8String        M
55    0 Event-Timestamp                 Time              M
85    0 Acct-Interim-Interval           Unsigned32        M
257   0 Host-IP-Address                 Address           M
258   0 Auth-Application-Id             Unsigned32        M
259   0 Acct-Application-Id             Unsigned32        M
260   0 Vendor-Specific-Application-Id  Grouped           M
261   0 Redirect-Host-Usage             Enumerated        M
262   0 Redirect-Max-Cache-Time         Unsigned32        M
263   0 Session-Id                      UTF8String        M
264   0 Origin-Host                     DiameterIdentity  M
265   0 Supported-Vendor-Id             Unsigned32        M
266   0 Vendor-Id                       Unsigned32        M
267   0 Firmware-Revision               Unsigned32        -
268   0 Result-Code                     Unsigned32        M
269   0 Product-Name                    UTF8String        -
270   0 Session-Binding                 Unsigned32        M
271   0 Session-Server-Failover         Enumerated        M
272   0 Multi-Round-Time-Out            Unsigned32        M
273   0 Disconnect-Cause                Enumerated        M
274   0 Auth-Request-Type               Enumerated        M
276   0 Auth-Grace-Period               Unsigned32        M
277   0 Auth-Session-State              Enumerated        M
278   0 Origin-State-Id                 Unsigned32        M
279   0 Failed-AVP                      Grouped           M
280   0 Proxy-Host                      DiameterIdentity  M
281   0 Error-Message                   UTF8String        -
282   0 Route-Record                    DiameterIdentity  M
283   0 Destination-Realm               DiameterIdentity  M
284   0 Proxy-Info                      Grouped           M
285   0 Re-Auth-Request-Type            Enumerated        M
287   0 Accounting-Sub-Session-Id       Unsigned64        M
291   0 Authorization-Lifetime          Unsigned32        M
292   0 Redirect-Host                   DiameterURI       M
293   0 Destination-Host                DiameterIdentity  M
294   0 Error-Reporting-Host            DiameterIdentity  -
295   0 Termination-Cause               Enumerated        M
296   0 Origin-Realm                    DiameterIdentity  M
297   0 Experimental-Result             Grouped           M
298   0 Experimental-Result-Code        Unsigned32        M
299   0 Inband-Security-Id              Unsigned32        M
480   0 Accounting-Record-Type          Enumerated        M
483   0 Accounting-Realtime-Required    Enumerated        M
485   0 Accounting-Record-Number        Unsigned32        M
# --- RFC 7155 (Diameter NASREQ, obsoletes RFC 4005) §4.6.1-4.6.9 accounting AVPs: M must,
# V must not (§4.6 flag table). Not in protocol-facts; RFC 7155 text + go-diameter's
# network_access_server.xml. 363/364: the session's running totals ("in the course of this
# session"), read by mediation/rf.py, as is Acct-Session-Time (46, §4.6.5: "the length of the
# current session in seconds"). Acct-Multi-Session-Id (50) and Acct-Interim-Interval (85) are
# RFC 6733's, above.
363   0 Accounting-Input-Octets         Unsigned64        M
364   0 Accounting-Output-Octets        Unsigned64        M
365   0 Accounting-Input-Packets        Unsigned64        M
366   0 Accounting-Output-Packets       Unsigned64        M
41    0 Acct-Delay-Time                 Unsigned32        M
45    0 Acct-Authentic                  Enumerated        M
46    0 Acct-Session-Time               Unsigned32        M
51    0 Acct-Link-Count                 Unsigned32        M
406   0 Accounting-Auth-Method          Enumerated        M
# --- RADIUS accounting attributes a NAS-derived client may still send (RFC 6733 §4.1: codes
# 1-255 are RADIUS attribute types): RFC 2869 §5.1/5.2 Acct-Input/Output-Gigawords, how many
# times a 32-bit octet counter wrapped around 2^32 (RFC 7155 defines no such AVP: its
# counters are Unsigned64). M either way. mediation/rf.py adds them into 363/364.
52    0 Acct-Input-Gigawords            Unsigned32        m
53    0 Acct-Output-Gigawords           Unsigned32        m
# --- RFC 4006 / 8506 credit control (protocol-facts B3)
411   0 CC-Correlation-Id               OctetString       m
412   0 CC-Input-Octets                 Unsigned64        M
413   0 CC-Money                        Grouped           M
414   0 CC-Output-Octets                Unsigned64        M
415   0 CC-Request-Number               Unsigned32        M
416   0 CC-Request-Type                 Enumerated        M
417   0 CC-Service-Specific-Units       Unsigned64        M
418   0 CC-Session-Failover             Enumerated        M
419   0 CC-Sub-Session-Id               Unsigned64        M
420   0 CC-Time                         Unsigned32        M
421   0 CC-Total-Octets                 Unsigned64        M
422   0 Check-Balance-Result            Enumerated        M
423   0 Cost-Information                Grouped           M
424   0 Cost-Unit                       UTF8String        M
425   0 Currency-Code                   Unsigned32        M
426   0 Credit-Control                  Enumerated        M
427   0 Credit-Control-Failure-Handling Enumerated        M
428   0 Direct-Debiting-Failure-Handling Enumerated       M
429   0 Exponent                        Integer32         M
430   0 Final-Unit-Indication           Grouped           M
431   0 Granted-Service-Unit            Grouped           M
432   0 Rating-Group                    Unsigned32        M
433   0 Redirect-Address-Type           Enumerated        M
434   0 Redirect-Server                 Grouped           M
435   0 Redirect-Server-Address         UTF8String        M
436   0 Requested-Action                Enumerated        M
437   0 Requested-Service-Unit          Grouped           M
438   0 Restriction-Filter-Rule         IPFilterRule      M
439   0 Service-Identifier              Unsigned32        M
440   0 Service-Parameter-Info          Grouped           m
441   0 Service-Parameter-Type          Unsigned32        m
442   0 Service-Parameter-Value         OctetString       m
443   0 Subscription-Id                 Grouped           M
444   0 Subscription-Id-Data            UTF8String        M
445   0 Unit-Value                      Grouped           M
446   0 Used-Service-Unit               Grouped           M
447   0 Value-Digits                    Integer64         M
448   0 Validity-Time                   Unsigned32        M
449   0 Final-Unit-Action               Enumerated        M
450   0 Subscription-Id-Type            Enumerated        M
451   0 Tariff-Time-Change              Time              M
452   0 Tariff-Change-Usage             Enumerated        M
453   0 G-S-U-Pool-Identifier           Unsigned32        M
454   0 CC-Unit-Type                    Enumerated        M
455   0 Multiple-Services-Indicator     Enumerated        M
456   0 Multiple-Services-Credit-Control Grouped          M
457   0 G-S-U-Pool-Reference            Grouped           M
458   0 User-Equipment-Info             Grouped           m
459   0 User-Equipment-Info-Type        Enumerated        m
460   0 User-Equipment-Info-Value       OctetString       m
461   0 Service-Context-Id              UTF8String        M
11    0 Filter-Id                       UTF8String        M
# RFC 8506 additions
554   0 Subscription-Id-Extension       Grouped           m
555   0 Subscription-Id-E164            UTF8String        m
556   0 Subscription-Id-IMSI            UTF8String        m
557   0 Subscription-Id-SIP-URI         UTF8String        m
558   0 Subscription-Id-NAI             UTF8String        m
559   0 Subscription-Id-Private         UTF8String        m
653   0 User-Equipment-Info-Extension   Grouped           m
# --- TS 29.061 3GPP-* (vendor 10415, codes 1-27): M either way (protocol-facts H4)
1     10415 3GPP-IMSI                     UTF8String      m
2     10415 3GPP-Charging-Id              ChargingId      m
3     10415 3GPP-PDP-Type                 Enumerated      m
4     10415 3GPP-CG-Address               OctetString     m
5     10415 3GPP-GPRS-Negotiated-QoS-Profile UTF8String   m
6     10415 3GPP-SGSN-Address             OctetString     m
7     10415 3GPP-GGSN-Address             OctetString     m
8     10415 3GPP-IMSI-MCC-MNC             UTF8String      m
9     10415 3GPP-GGSN-MCC-MNC             UTF8String      m
10    10415 3GPP-NSAPI                    OctetString     m
12    10415 3GPP-Selection-Mode           UTF8String      m
13    10415 3GPP-Charging-Characteristics UTF8String      m
14    10415 3GPP-CG-IPv6-Address          OctetString     m
15    10415 3GPP-SGSN-IPv6-Address        OctetString     m
16    10415 3GPP-GGSN-IPv6-Address        OctetString     m
17    10415 3GPP-IPv6-DNS-Servers         OctetString     m
18    10415 3GPP-SGSN-MCC-MNC             UTF8String      m
20    10415 3GPP-IMEISV                   OctetString     m
21    10415 3GPP-RAT-Type                 OctetString     m
22    10415 3GPP-User-Location-Info       OctetString     m
23    10415 3GPP-MS-TimeZone              OctetString     m
24    10415 3GPP-CAMEL-Charging-Info      OctetString     m
25    10415 3GPP-Packet-Filter            OctetString     m
26    10415 3GPP-Negotiated-DSCP          OctetString     m
27    10415 3GPP-Allocate-IP-Type         OctetString     m
# --- TS 32.299 (vendor 10415, V+M) (protocol-facts C3, C4, C6)
823   10415 Event-Type                    Grouped         M
824   10415 SIP-Method                    UTF8String      M
825   10415 Event                         UTF8String      M
826   10415 Content-Type                  UTF8String      M
827   10415 Content-Length                Unsigned32      M
829   10415 Role-Of-Node                  Enumerated      M
830   10415 User-Session-Id               UTF8String      M
831   10415 Calling-Party-Address         UTF8String      M
832   10415 Called-Party-Address          UTF8String      M
833   10415 Time-Stamps                   Grouped         M
834   10415 SIP-Request-Timestamp         Time            M
835   10415 SIP-Response-Timestamp        Time            M
836   10415 Application-Server            UTF8String      M
837   10415 Application-Provided-Called-Party-Address UTF8String M
838   10415 Inter-Operator-Identifier     Grouped         M
839   10415 Originating-IOI               UTF8String      M
840   10415 Terminating-IOI               UTF8String      M
841   10415 IMS-Charging-Identifier       UTF8String      M
842   10415 SDP-Session-Description       UTF8String      M
843   10415 SDP-Media-Component           Grouped         M
844   10415 SDP-Media-Name                UTF8String      M
845   10415 SDP-Media-Description         UTF8String      M
846   10415 CG-Address                    Address         M
847   10415 GGSN-Address                  Address         M
848   10415 Served-Party-IP-Address       Address         M
850   10415 Application-Server-Information Grouped        M
851   10415 Trunk-Group-Id                Grouped         M
854   10415 Bearer-Service                OctetString     M
855   10415 Service-Id                    UTF8String      M
861   10415 Cause-Code                    Integer32       M
862   10415 Node-Functionality            Enumerated      M
863   10415 Service-Specific-Data         UTF8String      M
864   10415 Originator                    Enumerated      M
868   10415 Time-Quota-Threshold          Unsigned32      M
869   10415 Volume-Quota-Threshold        Unsigned32      M
870   10415 Trigger-Type                  Enumerated      M
871   10415 Quota-Holding-Time            Unsigned32      M
872   10415 Reporting-Reason              Enumerated      M
873   10415 Service-Information           Grouped         M
874   10415 PS-Information                Grouped         M
876   10415 IMS-Information               Grouped         M
877   10415 MMS-Information               Grouped         M
881   10415 Quota-Consumption-Time        Unsigned32      M
886   10415 Originator-Address            Grouped         M
888   10415 Expires                       Unsigned32      M
889   10415 Message-Body                  Grouped         M
897   10415 Address-Data                  UTF8String      M
898   10415 Address-Domain                Grouped         M
899   10415 Address-Type                  Enumerated      M
1200  10415 Domain-Name                   UTF8String      M
1201  10415 Recipient-Address             Grouped         M
1202  10415 Submission-Time               Time            M
1203  10415 MM-Content-Type               Grouped         M
1204  10415 Type-Number                   Enumerated      M
1205  10415 Additional-Type-Information   UTF8String      M
1206  10415 Content-Size                  Unsigned32      M
1207  10415 Additional-Content-Information Grouped        M
1208  10415 Addressee-Type                Enumerated      M
1209  10415 Priority                      Enumerated      M
1210  10415 Message-ID                    UTF8String      M
1211  10415 Message-Type                  Enumerated      M
1212  10415 Message-Size                  Unsigned32      M
1213  10415 Message-Class                 Grouped         M
1214  10415 Class-Identifier              Enumerated      M
1215  10415 Token-Text                    UTF8String      M
1216  10415 Delivery-Report-Requested     Enumerated      M
1217  10415 Adaptations                   Enumerated      M
1218  10415 Applic-ID                     UTF8String      M
1219  10415 Aux-Applic-Info               UTF8String      M
1220  10415 Content-Class                 Enumerated      M
1221  10415 DRM-Content                   Enumerated      M
1222  10415 Read-Reply-Report-Requested   Enumerated      M
1223  10415 Reply-Applic-ID               UTF8String      M
1226  10415 Unit-Quota-Threshold          Unsigned32      M
1227  10415 PDP-Address                   Address         M
1228  10415 SGSN-Address                  Address         M
1230  10415 Deferred-Location-Event-Type  UTF8String      M
1247  10415 PDP-Context-Type              Enumerated      M
1248  10415 MMBox-Storage-Requested       Enumerated      M
1263  10415 Access-Network-Information    OctetString     M
1264  10415 Trigger                       Grouped         M
1265  10415 Base-Time-Interval            Unsigned32      M
1266  10415 Envelope                      Grouped         M
1267  10415 Envelope-End-Time             Time            M
1268  10415 Envelope-Reporting            Enumerated      M
1269  10415 Envelope-Start-Time           Time            M
1270  10415 Time-Quota-Mechanism          Grouped         M
1271  10415 Time-Quota-Type               Enumerated      M
2000  10415 SMS-Information               Grouped         M
2001  10415 Data-Coding-Scheme            Integer32       M
2002  10415 Destination-Interface         Grouped         M
2003  10415 Interface-Id                  UTF8String      M
2004  10415 Interface-Port                UTF8String      M
2005  10415 Interface-Text                UTF8String      M
2006  10415 Interface-Type                Enumerated      M
2007  10415 SM-Message-Type               Enumerated      M
2008  10415 Originator-SCCP-Address       Address         M
2009  10415 Originator-Interface          Grouped         M
2010  10415 Recipient-SCCP-Address        Address         M
2011  10415 Reply-Path-Requested          Enumerated      M
2012  10415 SM-Discharge-Time             Time            M
2013  10415 SM-Protocol-ID                OctetString     M
2014  10415 SM-Status                     OctetString     M
2015  10415 SM-User-Data-Header           OctetString     M
2016  10415 SMS-Node                      Enumerated      M
2017  10415 SMSC-Address                  Address         M
2018  10415 Client-Address                Address         M
2019  10415 Number-Of-Messages-Sent       Unsigned32      M
2020  10415 Low-Balance-Indication        Enumerated      M
2021  10415 Remaining-Balance             Grouped         M
2026  10415 Recipient-Info                Grouped         M
2027  10415 Originator-Received-Address   Grouped         M
2028  10415 Recipient-Received-Address    Grouped         M
2029  10415 SM-Service-Type               Enumerated      M
2047  10415 Serving-Node-Type             Enumerated      M
# TS 32.299 PS offline charging containers (vendor 10415, V+M). Codes and types as go-diameter
# diam/dict/testdata/tgpp_ro_rf.xml lists them (Service-Data-Container 2040 ... Local-Sequence-
# Number 2063); not in protocol-facts. mediation/rf.py reads a container's octets and time.
2037  10415 Change-Condition              Integer32       M
2038  10415 Change-Time                   Time            M
2040  10415 Service-Data-Container        Grouped         M
2041  10415 Start-Time                    Time            M
2042  10415 Stop-Time                     Time            M
2043  10415 Time-First-Usage              Time            M
2044  10415 Time-Last-Usage               Time            M
2045  10415 Time-Usage                    Unsigned32      M
2046  10415 Traffic-Data-Volumes          Grouped         M
2063  10415 Local-Sequence-Number         Unsigned32      M
2050  10415 PDN-Connection-Charging-ID    Unsigned32      M
2051  10415 Dynamic-Address-Flag          Enumerated      M
2064  10415 Node-Id                       UTF8String      M
2067  10415 SGW-Address                   Address         M
2301  10415 SIP-Request-Timestamp-Fraction  Unsigned32    M
2302  10415 SIP-Response-Timestamp-Fraction Unsigned32    M
3409  10415 SMS-Result                    Unsigned32      M
4407  10415 Unused-Quota-Timer            Unsigned32      M
1249  10415 Service-Specific-Info         Grouped         M
1257  10415 Service-Specific-Type         Unsigned32      M
1258  10415 Event-Charging-TimeStamp      Time            M
1250  10415 Called-Asserted-Identity      UTF8String      M
1251  10415 Requested-Party-Address       UTF8String      M
1252  10415 PoC-User-Role                 Grouped         M
2023  10415 Carrier-Select-Routing-Information UTF8String M
2024  10415 Number-Portability-Routing-Information UTF8String M
2022  10415 Refund-Information            OctetString     M
2033  10415 Subscriber-Role               Enumerated      M
3401  10415 Reason-Header                 UTF8String      M
1004  10415 Charging-Rule-Base-Name       UTF8String      M
857   10415 Charged-Party                 UTF8String      M
1279  10415 User-Participating-Type       Enumerated      M
# QoS-Information and friends used by PS-Information / MSCC (TS 29.212)
1016  10415 QoS-Information               Grouped         M
1028  10415 QoS-Class-Identifier          Enumerated      M
1041  10415 APN-Aggregate-Max-Bitrate-UL  Unsigned32      m
1040  10415 APN-Aggregate-Max-Bitrate-DL  Unsigned32      m
515   10415 Max-Requested-Bandwidth-DL    Unsigned32      M
516   10415 Max-Requested-Bandwidth-UL    Unsigned32      M
1025  10415 Guaranteed-Bitrate-DL         Unsigned32      M
1026  10415 Guaranteed-Bitrate-UL         Unsigned32      M
1034  10415 Allocation-Retention-Priority Grouped         m
1046  10415 Priority-Level                Unsigned32      m
1047  10415 Pre-emption-Capability        Enumerated      m
1048  10415 Pre-emption-Vulnerability     Enumerated      m
1032  10415 RAT-Type                      Enumerated      m
1000  10415 Bearer-Usage                  Enumerated      M
1020  10415 Bearer-Identifier             OctetString     M
1027  10415 IP-CAN-Type                   Enumerated      M
1276  10415 AF-Correlation-Information    Grouped         M
1005  10415 Charging-Rule-Name            OctetString     M
3926  10415 Related-Trigger               Grouped         M
2055  10415 AoC-Request-Type              Enumerated      M
"""

ENUMS = """
Acct-Authentic: 1 RADIUS, 2 LOCAL, 3 REMOTE, 4 DIAMETER
Accounting-Auth-Method: 1 PAP, 2 CHAP, 3 MS_CHAP_1, 4 MS_CHAP_2, 5 EAP, 7 NONE
Disconnect-Cause: 0 REBOOTING, 1 BUSY, 2 DO_NOT_WANT_TO_TALK_TO_YOU
Termination-Cause: 1 DIAMETER_LOGOUT, 2 DIAMETER_SERVICE_NOT_PROVIDED, 3 DIAMETER_BAD_ANSWER, 4 DIAMETER_ADMINISTRATIVE, 5 DIAMETER_LINK_BROKEN, 6 DIAMETER_AUTH_EXPIRED, 7 DIAMETER_USER_MOVED, 8 DIAMETER_SESSION_TIMEOUT
Auth-Session-State: 0 STATE_MAINTAINED, 1 NO_STATE_MAINTAINED
Re-Auth-Request-Type: 0 AUTHORIZE_ONLY, 1 AUTHORIZE_AUTHENTICATE
Auth-Request-Type: 1 AUTHENTICATE_ONLY, 2 AUTHORIZE_ONLY, 3 AUTHORIZE_AUTHENTICATE
Accounting-Record-Type: 1 EVENT_RECORD, 2 START_RECORD, 3 INTERIM_RECORD, 4 STOP_RECORD
Accounting-Realtime-Required: 1 DELIVER_AND_GRANT, 2 GRANT_AND_STORE, 3 GRANT_AND_LOSE
Redirect-Host-Usage: 0 DONT_CACHE, 1 ALL_SESSION, 2 ALL_REALM, 3 REALM_AND_APPLICATION, 4 ALL_APPLICATION, 5 ALL_HOST, 6 ALL_USER
Session-Server-Failover: 0 REFUSE_SERVICE, 1 TRY_AGAIN, 2 ALLOW_SERVICE, 3 TRY_AGAIN_ALLOW_SERVICE
CC-Request-Type: 1 INITIAL_REQUEST, 2 UPDATE_REQUEST, 3 TERMINATION_REQUEST, 4 EVENT_REQUEST
Requested-Action: 0 DIRECT_DEBITING, 1 REFUND_ACCOUNT, 2 CHECK_BALANCE, 3 PRICE_ENQUIRY
Multiple-Services-Indicator: 0 MULTIPLE_SERVICES_NOT_SUPPORTED, 1 MULTIPLE_SERVICES_SUPPORTED
Final-Unit-Action: 0 TERMINATE, 1 REDIRECT, 2 RESTRICT_ACCESS
Credit-Control-Failure-Handling: 0 TERMINATE, 1 CONTINUE, 2 RETRY_AND_TERMINATE
Direct-Debiting-Failure-Handling: 0 TERMINATE_OR_BUFFER, 1 CONTINUE
CC-Session-Failover: 0 FAILOVER_NOT_SUPPORTED, 1 FAILOVER_SUPPORTED
Subscription-Id-Type: 0 END_USER_E164, 1 END_USER_IMSI, 2 END_USER_SIP_URI, 3 END_USER_NAI, 4 END_USER_PRIVATE
Check-Balance-Result: 0 ENOUGH_CREDIT, 1 NO_CREDIT
CC-Unit-Type: 0 TIME, 1 MONEY, 2 TOTAL-OCTETS, 3 INPUT-OCTETS, 4 OUTPUT-OCTETS, 5 SERVICE-SPECIFIC-UNITS
Tariff-Change-Usage: 0 UNIT_BEFORE_TARIFF_CHANGE, 1 UNIT_AFTER_TARIFF_CHANGE, 2 UNIT_INDETERMINATE
Redirect-Address-Type: 0 IPv4_Address, 1 IPv6_Address, 2 URL, 3 SIP_URI
Credit-Control: 0 CREDIT_AUTHORIZATION, 1 RE_AUTHORIZATION
User-Equipment-Info-Type: 0 IMEISV, 1 MAC, 2 EUI64, 3 MODIFIED_EUI64
3GPP-PDP-Type: 0 IPv4, 1 PPP, 2 IPv6, 3 IPv4v6
Role-Of-Node: 0 ORIGINATING_ROLE, 1 TERMINATING_ROLE, 2 PROXY_ROLE, 3 B2BUA_ROLE
Node-Functionality: 0 S-CSCF, 1 P-CSCF, 2 I-CSCF, 3 MRFC, 4 MGCF, 5 BGCF, 6 AS, 7 IBCF, 8 S-GW, 9 P-GW, 10 HSGW, 11 E-CSCF, 12 MME, 13 TRF, 14 TF, 15 ATCF, 16 Proxy_Function, 17 ePDG
Originator: 0 Calling_Party, 1 Called_Party
Reporting-Reason: 0 THRESHOLD, 1 QHT, 2 FINAL, 3 QUOTA_EXHAUSTED, 4 VALIDITY_TIME, 5 OTHER_QUOTA_TYPE, 6 RATING_CONDITION_CHANGE, 7 FORCED_REAUTHORISATION, 8 POOL_EXHAUSTED, 9 UNUSED_QUOTA_TIMER
Trigger-Type: 1 CHANGE_IN_SGSN_IP_ADDRESS, 2 CHANGE_IN_QOS, 3 CHANGE_IN_LOCATION, 4 CHANGE_IN_RAT, 5 CHANGE_IN_UE_TIMEZONE, 10 CHANGEINQOS_TRAFFIC_CLASS, 11 CHANGEINQOS_RELIABILITY_CLASS, 12 CHANGEINQOS_DELAY_CLASS, 13 CHANGEINQOS_PEAK_THROUGHPUT, 14 CHANGEINQOS_PRECEDENCE_CLASS, 15 CHANGEINQOS_MEAN_THROUGHPUT, 16 CHANGEINQOS_MAXIMUM_BIT_RATE_FOR_UPLINK, 17 CHANGEINQOS_MAXIMUM_BIT_RATE_FOR_DOWNLINK, 18 CHANGEINQOS_RESIDUAL_BER, 19 CHANGEINQOS_SDU_ERROR_RATIO, 20 CHANGEINQOS_TRANSFER_DELAY, 21 CHANGEINQOS_TRAFFIC_HANDLING_PRIORITY, 22 CHANGEINQOS_GUARANTEED_BIT_RATE_FOR_UPLINK, 23 CHANGEINQOS_GUARANTEED_BIT_RATE_FOR_DOWNLINK, 24 CHANGEINQOS_APN_AGGREGATE_MAXIMUM_BIT_RATE, 30 CHANGEINLOCATION_MCC, 31 CHANGEINLOCATION_MNC, 32 CHANGEINLOCATION_RAC, 33 CHANGEINLOCATION_LAC, 34 CHANGEINLOCATION_CellId, 35 CHANGEINLOCATION_TAC, 36 CHANGEINLOCATION_ECGI, 40 CHANGE_IN_MEDIA_COMPOSITION, 50 CHANGE_IN_PARTICIPANTS_NMB, 51 CHANGE_IN_THRSHLD_OF_PARTICIPANTS_NMB, 52 CHANGE_IN_USER_PARTICIPATING_TYPE, 60 CHANGE_IN_SERVICE_CONDITION, 61 CHANGE_IN_SERVING_NODE, 62 CHANGE_IN_ACCESS_FOR_A_SERVICE_DATA_FLOW, 70 CHANGE_IN_USER_CSG_INFORMATION, 71 CHANGE_IN_HYBRID_SUBSCRIBED_USER_CSG_INFORMATION, 72 CHANGE_IN_HYBRID_UNSUBSCRIBED_USER_CSG_INFORMATION, 73 CHANGE_OF_UE_PRESENCE_IN_PRESENCE_REPORTING_AREA, 74 CHANGE_IN_SERVING_PLMN_RATE_CONTROL, 75 CHANGE_IN_APN_RATE_CONTROL
Address-Type: 0 e-mail_address, 1 MSISDN, 2 IPv4_Address, 3 IPv6_Address, 4 Numeric_Shortcode, 5 Alphanumeric_Shortcode, 6 Other, 7 IMSI
Addressee-Type: 0 TO, 1 CC, 2 BCC
SM-Message-Type: 0 SUBMISSION, 1 DELIVERY_REPORT, 2 SM_SERVICE_REQUEST
SMS-Node: 0 SMS_ROUTER, 1 IP_SM_GW, 2 SMS_ROUTER_AND_IP_SM_GW, 3 SMS_SC
Reply-Path-Requested: 0 NO_REPLY_PATH_SET, 1 REPLY_PATH_SET
SM-Service-Type: 0 VAS4SMS_SHORT_MESSAGE_CONTENT_PROCESSING, 1 VAS4SMS_SHORT_MESSAGE_FORWARDING, 2 VAS4SMS_SHORT_MESSAGE_FORWARDING_MULTIPLE_SUBSCRIPTIONS, 3 VAS4SMS_SHORT_MESSAGE_FILTERING, 4 VAS4SMS_SHORT_MESSAGE_RECEIPT, 5 VAS4SMS_SHORT_MESSAGE_NETWORK_STORAGE, 6 VAS4SMS_SHORT_MESSAGE_TO_MULTIPLE_DESTINATIONS, 7 VAS4SMS_SHORT_MESSAGE_VIRTUAL_PRIVATE_NETWORK, 8 VAS4SMS_SHORT_MESSAGE_AUTO_REPLY, 9 VAS4SMS_SHORT_MESSAGE_PERSONAL_SIGNATURE, 10 VAS4SMS_SHORT_MESSAGE_DEFERRED_DELIVERY
Interface-Type: 0 Unknown, 1 MOBILE_ORIGINATING, 2 MOBILE_TERMINATING, 3 APPLICATION_ORIGINATING, 4 APPLICATION_TERMINATION
Low-Balance-Indication: 0 NOT_APPLICABLE, 1 YES
Time-Quota-Type: 0 DISCRETE_TIME_PERIOD, 1 CONTINUOUS_TIME_PERIOD
Envelope-Reporting: 0 DO_NOT_REPORT_ENVELOPES, 1 REPORT_ENVELOPES, 2 REPORT_ENVELOPES_WITH_VOLUME, 3 REPORT_ENVELOPES_WITH_EVENTS, 4 REPORT_ENVELOPES_WITH_VOLUME_AND_EVENTS
Serving-Node-Type: 0 SGSN, 1 PMIPSGW, 2 GTPSGW, 3 ePDG, 4 hSGW, 5 MME, 6 TWAN
Dynamic-Address-Flag: 0 Static, 1 Dynamic
PDP-Context-Type: 0 PRIMARY, 1 SECONDARY
Message-Type: 1 m-send-req, 2 m-send-conf, 3 m-notification-ind, 4 m-notifyresp-ind, 5 m-retrieve-conf, 6 m-acknowledge-ind, 7 m-delivery-ind, 8 m-read-rec-ind, 9 m-read-orig-ind, 10 m-forward-req, 11 m-forward-conf, 12 m-mbox-store-conf, 13 m-mbox-view-conf, 14 m-mbox-upload-conf, 15 m-mbox-delete-conf
Priority: 0 Low, 1 Normal, 2 High
Delivery-Report-Requested: 0 No, 1 Yes
Read-Reply-Report-Requested: 0 No, 1 Yes
MMBox-Storage-Requested: 0 No, 1 Yes
Adaptations: 0 Yes, 1 No
Content-Class: 0 text, 1 image-basic, 2 image-rich, 3 video-basic, 4 video-rich, 5 megapixel, 6 content-basic, 7 content-rich
DRM-Content: 0 No, 1 Yes
Class-Identifier: 0 Personal, 1 Advertisement, 2 Informational, 3 Auto
Subscriber-Role: 0 Originating, 1 Terminating
AoC-Request-Type: 0 AoC_NOT_REQUESTED, 1 AoC_FULL, 2 AoC_COST_ONLY, 3 AoC_TARIFF_ONLY
"""

# Grouped AVP grammars (protocol-facts A5/A6, B4, C3, C4, C6).
GROUPS = """
Vendor-Specific-Application-Id ::= {Vendor-Id} [Auth-Application-Id] [Acct-Application-Id]
Failed-AVP ::= 1*{AVP}
Proxy-Info ::= {Proxy-Host} {Proxy-State} *[AVP]
Experimental-Result ::= {Vendor-Id} {Experimental-Result-Code}
Multiple-Services-Credit-Control ::= [Granted-Service-Unit] [Requested-Service-Unit] *[Used-Service-Unit] [Tariff-Change-Usage] *[Service-Identifier] [Rating-Group] *[G-S-U-Pool-Reference] [Validity-Time] [Result-Code] [Final-Unit-Indication] [Time-Quota-Threshold] [Volume-Quota-Threshold] [Unit-Quota-Threshold] [Quota-Holding-Time] [Quota-Consumption-Time] *[Reporting-Reason] [Trigger] [Refund-Information] *[AF-Correlation-Information] *[Envelope] [Envelope-Reporting] [Time-Quota-Mechanism] *[Service-Specific-Info] [QoS-Information] [3GPP-RAT-Type] [Related-Trigger] [Unused-Quota-Timer] *[AVP]
Granted-Service-Unit ::= [Tariff-Time-Change] [CC-Time] [CC-Money] [CC-Total-Octets] [CC-Input-Octets] [CC-Output-Octets] [CC-Service-Specific-Units] *[AVP]
Requested-Service-Unit ::= [CC-Time] [CC-Money] [CC-Total-Octets] [CC-Input-Octets] [CC-Output-Octets] [CC-Service-Specific-Units] *[AVP]
Used-Service-Unit ::= [Tariff-Change-Usage] [CC-Time] [CC-Money] [CC-Total-Octets] [CC-Input-Octets] [CC-Output-Octets] [CC-Service-Specific-Units] [Reporting-Reason] *[Event-Charging-TimeStamp] *[AVP]
CC-Money ::= {Unit-Value} [Currency-Code]
Unit-Value ::= {Value-Digits} [Exponent]
Cost-Information ::= {Unit-Value} {Currency-Code} [Cost-Unit]
Final-Unit-Indication ::= {Final-Unit-Action} *[Restriction-Filter-Rule] *[Filter-Id] [Redirect-Server]
Redirect-Server ::= {Redirect-Address-Type} {Redirect-Server-Address}
Subscription-Id ::= {Subscription-Id-Type} {Subscription-Id-Data}
Subscription-Id-Extension ::= [Subscription-Id-E164] [Subscription-Id-IMSI] [Subscription-Id-SIP-URI] [Subscription-Id-NAI] [Subscription-Id-Private] *[AVP]
G-S-U-Pool-Reference ::= {G-S-U-Pool-Identifier} {CC-Unit-Type} {Unit-Value}
Service-Parameter-Info ::= {Service-Parameter-Type} {Service-Parameter-Value}
User-Equipment-Info ::= {User-Equipment-Info-Type} {User-Equipment-Info-Value}
Service-Information ::= *[Subscription-Id] [PS-Information] [IMS-Information] [MMS-Information] [SMS-Information] *[AVP]
PS-Information ::= [3GPP-Charging-Id] [PDN-Connection-Charging-ID] [Node-Id] [3GPP-PDP-Type] *[PDP-Address] [Dynamic-Address-Flag] [QoS-Information] *[SGSN-Address] *[GGSN-Address] *[SGW-Address] [CG-Address] [Serving-Node-Type] [3GPP-IMSI-MCC-MNC] [3GPP-GGSN-MCC-MNC] [3GPP-NSAPI] [Called-Station-Id] [3GPP-Selection-Mode] [3GPP-Charging-Characteristics] [3GPP-SGSN-MCC-MNC] [3GPP-MS-TimeZone] [3GPP-User-Location-Info] [3GPP-RAT-Type] [PDP-Context-Type] *[Traffic-Data-Volumes] *[Service-Data-Container] [User-Equipment-Info] [Start-Time] [Stop-Time] [Change-Condition] *[AVP]
IMS-Information ::= [Event-Type] [Role-Of-Node] {Node-Functionality} [User-Session-Id] *[Calling-Party-Address] [Called-Party-Address] *[Called-Asserted-Identity] *[Requested-Party-Address] [Time-Stamps] *[Application-Server-Information] *[Inter-Operator-Identifier] [IMS-Charging-Identifier] *[SDP-Session-Description] *[SDP-Media-Component] [Served-Party-IP-Address] [Trunk-Group-Id] [Cause-Code] *[Access-Network-Information] *[AVP]
MMS-Information ::= [Originator-Address] *[Recipient-Address] [Submission-Time] [MM-Content-Type] [Priority] [Message-ID] [Message-Type] [Message-Size] [Message-Class] [Delivery-Report-Requested] [Read-Reply-Report-Requested] [MMBox-Storage-Requested] [Applic-ID] [Reply-Applic-ID] [Aux-Applic-Info] [Content-Class] [DRM-Content] [Adaptations] *[AVP]
SMS-Information ::= [SMS-Node] [Client-Address] [Originator-SCCP-Address] [SMSC-Address] [Data-Coding-Scheme] [SM-Discharge-Time] [SM-Message-Type] [Originator-Interface] [SM-Protocol-ID] [Reply-Path-Requested] [SM-Status] [SM-User-Data-Header] [Number-Of-Messages-Sent] *[Recipient-Info] [Originator-Received-Address] [SM-Service-Type] [SMS-Result] *[AVP]
Event-Type ::= [SIP-Method] [Event] [Expires] *[AVP]
Time-Stamps ::= [SIP-Request-Timestamp] [SIP-Response-Timestamp] [SIP-Request-Timestamp-Fraction] [SIP-Response-Timestamp-Fraction] *[AVP]
Inter-Operator-Identifier ::= [Originating-IOI] [Terminating-IOI] *[AVP]
SDP-Media-Component ::= [SDP-Media-Name] *[SDP-Media-Description] *[AVP]
Application-Server-Information ::= [Application-Server] *[Application-Provided-Called-Party-Address] *[AVP]
Originator-Address ::= [Address-Type] [Address-Data] [Address-Domain] *[AVP]
Recipient-Address ::= [Address-Type] [Address-Data] [Address-Domain] [Addressee-Type] *[AVP]
Address-Domain ::= [Domain-Name] [3GPP-IMSI-MCC-MNC] *[AVP]
Originator-Interface ::= [Interface-Id] [Interface-Text] [Interface-Port] [Interface-Type] *[AVP]
Destination-Interface ::= [Interface-Id] [Interface-Text] [Interface-Port] [Interface-Type] *[AVP]
Recipient-Info ::= [Destination-Interface] *[Recipient-Address] *[Recipient-Received-Address] [Recipient-SCCP-Address] [SM-Protocol-ID] *[AVP]
Originator-Received-Address ::= [Address-Type] [Address-Data] [Address-Domain] *[AVP]
Recipient-Received-Address ::= [Address-Type] [Address-Data] [Address-Domain] *[AVP]
Remaining-Balance ::= {Unit-Value} {Currency-Code}
Service-Data-Container ::= [AF-Correlation-Information] [Charging-Rule-Base-Name] [Accounting-Input-Octets] [Accounting-Output-Octets] [Local-Sequence-Number] [QoS-Information] [Rating-Group] [Change-Time] [Service-Identifier] [Service-Specific-Info] [SGSN-Address] [Time-First-Usage] [Time-Last-Usage] [Time-Usage] *[Change-Condition] [3GPP-User-Location-Info] *[AVP]
Traffic-Data-Volumes ::= [QoS-Information] [Accounting-Input-Octets] [Accounting-Output-Octets] [Change-Condition] [Change-Time] [3GPP-User-Location-Info] [3GPP-Charging-Id] *[AVP]
Trigger ::= *[Trigger-Type] *[AVP]
Time-Quota-Mechanism ::= {Time-Quota-Type} {Base-Time-Interval}
Envelope ::= {Envelope-Start-Time} [Envelope-End-Time] [CC-Total-Octets] [CC-Input-Octets] [CC-Output-Octets] [CC-Service-Specific-Units] *[AVP]
Service-Specific-Info ::= [Service-Specific-Data] [Service-Specific-Type] *[AVP]
QoS-Information ::= [QoS-Class-Identifier] [Max-Requested-Bandwidth-UL] [Max-Requested-Bandwidth-DL] [Guaranteed-Bitrate-UL] [Guaranteed-Bitrate-DL] [Bearer-Identifier] [Allocation-Retention-Priority] [APN-Aggregate-Max-Bitrate-UL] [APN-Aggregate-Max-Bitrate-DL] *[AVP]
Allocation-Retention-Priority ::= {Priority-Level} [Pre-emption-Capability] [Pre-emption-Vulnerability]
AF-Correlation-Information ::= *[AVP]
Related-Trigger ::= *[Trigger-Type] *[AVP]
Trunk-Group-Id ::= *[AVP]
MM-Content-Type ::= [Type-Number] [Additional-Type-Information] [Content-Size] *[Additional-Content-Information] *[AVP]
Additional-Content-Information ::= [Type-Number] [Additional-Type-Information] [Content-Size] *[AVP]
Message-Class ::= [Class-Identifier] [Token-Text] *[AVP]
Message-Body ::= *[AVP]
PoC-User-Role ::= *[AVP]
User-Equipment-Info-Extension ::= *[AVP]
"""

# Commands: code, app ("*" = any app), name, request abbrev, answer abbrev, P flag ("PXY" or "-").
COMMANDS = """
257 0        Capabilities-Exchange   CER CEA -
280 0        Device-Watchdog         DWR DWA -
282 0        Disconnect-Peer         DPR DPA -
272 4        Credit-Control          CCR CCA PXY
271 3        Accounting              ACR ACA PXY
258 *        Re-Auth                 RAR RAA PXY
274 *        Abort-Session           ASR ASA PXY
275 *        Session-Termination     STR STA PXY
272 16777238 Gx-Credit-Control       GxCCR GxCCA PXY
316 16777251 Update-Location         ULR ULA PXY
317 16777251 Cancel-Location         CLR CLA PXY
318 16777251 Authentication-Information AIR AIA PXY
319 16777251 Insert-Subscriber-Data  IDR IDA PXY
320 16777251 Delete-Subscriber-Data  DSR DSA PXY
321 16777251 Purge-UE                PUR PUA PXY
322 16777251 Reset                   RSR RSA PXY
323 16777251 Notify                  NOR NOA PXY
"""

# Command grammars by abbreviation; Session-Id is <fixed> first (RFC 6733 §8.8).
GRAMMARS = """
CER ::= {Origin-Host} {Origin-Realm} 1*{Host-IP-Address} {Vendor-Id} {Product-Name} [Origin-State-Id] *[Supported-Vendor-Id] *[Auth-Application-Id] *[Inband-Security-Id] *[Acct-Application-Id] *[Vendor-Specific-Application-Id] [Firmware-Revision] !Destination-Host !Destination-Realm *[AVP]
CEA ::= {Result-Code} {Origin-Host} {Origin-Realm} 1*{Host-IP-Address} {Vendor-Id} {Product-Name} [Origin-State-Id] [Error-Message] [Failed-AVP] *[Supported-Vendor-Id] *[Auth-Application-Id] *[Inband-Security-Id] *[Acct-Application-Id] *[Vendor-Specific-Application-Id] [Firmware-Revision] *[AVP]
DWR ::= {Origin-Host} {Origin-Realm} [Origin-State-Id] !Destination-Host !Destination-Realm *[AVP]
DWA ::= {Result-Code} {Origin-Host} {Origin-Realm} [Error-Message] [Failed-AVP] [Origin-State-Id] *[AVP]
DPR ::= {Origin-Host} {Origin-Realm} {Disconnect-Cause} !Destination-Host !Destination-Realm *[AVP]
DPA ::= {Result-Code} {Origin-Host} {Origin-Realm} [Error-Message] [Failed-AVP] *[AVP]
CCR ::= <Session-Id> {Origin-Host} {Origin-Realm} {Destination-Realm} {Auth-Application-Id} {Service-Context-Id} {CC-Request-Type} {CC-Request-Number} [Destination-Host] [User-Name] [CC-Sub-Session-Id] [Acct-Multi-Session-Id] [Origin-State-Id] [Event-Timestamp] *[Subscription-Id] *[Subscription-Id-Extension] [Service-Identifier] [Termination-Cause] [Requested-Service-Unit] [Requested-Action] *[Used-Service-Unit] [AoC-Request-Type] [Multiple-Services-Indicator] *[Multiple-Services-Credit-Control] *[Service-Parameter-Info] [CC-Correlation-Id] [User-Equipment-Info] [User-Equipment-Info-Extension] [Service-Information] *[Proxy-Info] *[Route-Record] *[AVP]
CCA ::= <Session-Id> {Result-Code} {Origin-Host} {Origin-Realm} {Auth-Application-Id} {CC-Request-Type} {CC-Request-Number} [User-Name] [CC-Session-Failover] [CC-Sub-Session-Id] [Acct-Multi-Session-Id] [Origin-State-Id] [Event-Timestamp] [Granted-Service-Unit] *[Multiple-Services-Credit-Control] [Cost-Information] [Final-Unit-Indication] [Check-Balance-Result] [Credit-Control-Failure-Handling] [Direct-Debiting-Failure-Handling] [Validity-Time] *[Redirect-Host] [Redirect-Host-Usage] [Redirect-Max-Cache-Time] [Low-Balance-Indication] [Remaining-Balance] [Service-Information] *[Proxy-Info] *[Route-Record] *[Failed-AVP] *[AVP]
ACR ::= <Session-Id> {Origin-Host} {Origin-Realm} {Destination-Realm} {Accounting-Record-Type} {Accounting-Record-Number} [Acct-Application-Id] [Vendor-Specific-Application-Id] [User-Name] [Destination-Host] [Accounting-Sub-Session-Id] [Acct-Session-Id] [Acct-Multi-Session-Id] [Acct-Interim-Interval] [Accounting-Realtime-Required] [Origin-State-Id] [Event-Timestamp] [Service-Context-Id] [Service-Information] *[Proxy-Info] *[Route-Record] *[AVP]
ACA ::= <Session-Id> {Result-Code} {Origin-Host} {Origin-Realm} {Accounting-Record-Type} {Accounting-Record-Number} [Acct-Application-Id] [Vendor-Specific-Application-Id] [User-Name] [Accounting-Sub-Session-Id] [Acct-Session-Id] [Acct-Multi-Session-Id] [Error-Message] [Error-Reporting-Host] [Failed-AVP] [Acct-Interim-Interval] [Accounting-Realtime-Required] [Origin-State-Id] [Event-Timestamp] *[Proxy-Info] *[AVP]
RAR ::= <Session-Id> {Origin-Host} {Origin-Realm} {Destination-Realm} {Destination-Host} {Auth-Application-Id} {Re-Auth-Request-Type} [User-Name] [Origin-State-Id] [CC-Sub-Session-Id] [G-S-U-Pool-Identifier] [Service-Identifier] [Rating-Group] *[Proxy-Info] *[Route-Record] *[AVP]
RAA ::= <Session-Id> {Result-Code} {Origin-Host} {Origin-Realm} [User-Name] [Origin-State-Id] [Error-Message] [Error-Reporting-Host] [Failed-AVP] *[Redirect-Host] [Redirect-Host-Usage] [Redirect-Max-Cache-Time] [CC-Sub-Session-Id] [G-S-U-Pool-Identifier] [Service-Identifier] [Rating-Group] *[Proxy-Info] *[AVP]
ASR ::= <Session-Id> {Origin-Host} {Origin-Realm} {Destination-Realm} {Destination-Host} {Auth-Application-Id} [User-Name] [Origin-State-Id] *[Proxy-Info] *[Route-Record] *[AVP]
ASA ::= <Session-Id> {Result-Code} {Origin-Host} {Origin-Realm} [User-Name] [Origin-State-Id] [Error-Message] [Error-Reporting-Host] [Failed-AVP] *[Redirect-Host] [Redirect-Host-Usage] [Redirect-Max-Cache-Time] *[Proxy-Info] *[AVP]
STR ::= <Session-Id> {Origin-Host} {Origin-Realm} {Destination-Realm} {Auth-Application-Id} {Termination-Cause} [User-Name] [Destination-Host] *[Class] [Origin-State-Id] *[Proxy-Info] *[Route-Record] *[AVP]
STA ::= <Session-Id> {Result-Code} {Origin-Host} {Origin-Realm} [User-Name] *[Class] [Error-Message] [Error-Reporting-Host] [Failed-AVP] [Origin-State-Id] *[Redirect-Host] [Redirect-Host-Usage] [Redirect-Max-Cache-Time] *[Proxy-Info] *[AVP]
GxCCR ::= *[AVP]
GxCCA ::= *[AVP]
ULR ::= *[AVP]
ULA ::= *[AVP]
CLR ::= *[AVP]
CLA ::= *[AVP]
AIR ::= *[AVP]
AIA ::= *[AVP]
IDR ::= *[AVP]
IDA ::= *[AVP]
DSR ::= *[AVP]
DSA ::= *[AVP]
PUR ::= *[AVP]
PUA ::= *[AVP]
RSR ::= *[AVP]
RSA ::= *[AVP]
NOR ::= *[AVP]
NOA ::= *[AVP]
"""
