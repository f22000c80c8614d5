#!/usr/bin/python3
"""Official Azure Confidential Ledger Python client (Debian's python3-azure,
azure.confidentialledger 1.0.1) against a running cledgerd.

Environment: CLEDGER_ENDPOINT, CLEDGER_SERVICE_CERT, CLEDGER_CERT, CLEDGER_KEY, CLEDGER_OUT (as
js_flow.js). Prints "N passed, M failed"; exit status 1 on any failure.
"""
import concurrent.futures
import itertools
import json
import os
import sys

from azure.confidentialledger import (
    ConfidentialLedgerCertificateCredential,
    ConfidentialLedgerClient,
)
from azure.core.exceptions import ResourceNotFoundError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli", "lib"))
from tally import Tally  # noqa: E402

T = Tally()
check = T.check


def main():
    out = os.environ.get("CLEDGER_OUT", ".")
    # The client takes one PEM file holding the certificate and its key.
    cred_path = os.path.join(out, "py_client.pem")
    with open(cred_path, "w", encoding="utf-8") as f:
        f.write(open(os.environ["CLEDGER_CERT"], encoding="utf-8").read())
        f.write(open(os.environ["CLEDGER_KEY"], encoding="utf-8").read())
    client = ConfidentialLedgerClient(
        os.environ["CLEDGER_ENDPOINT"],
        credential=ConfidentialLedgerCertificateCredential(cred_path),
        ledger_certificate_path=os.environ["CLEDGER_SERVICE_CERT"],
    )

    poller = client.begin_create_ledger_entry(
        {"contents": "hello from the official Python SDK"}, collection_id="py-sdk"
    )
    result = poller.result()
    txid = result["transactionId"]
    # The poller returns the write result with the transaction id once the write is committed.
    check(txid and result.get("collectionId") == "py-sdk", f"begin_create_ledger_entry: {result}")

    entry = client.begin_get_ledger_entry(txid, collection_id="py-sdk").result()
    check(entry["entry"]["contents"] == "hello from the official Python SDK", "read back")
    check(entry["entry"]["transactionId"] == txid, "entry transactionId")

    status = client.get_transaction_status(txid)
    check(status["state"] == "Committed" and status["transactionId"] == txid, "status")

    receipt = client.begin_get_receipt(txid).result()
    check(receipt["state"] == "Ready" and receipt["receipt"]["signature"], "receipt")
    with open(os.path.join(out, "py_receipt.json"), "w", encoding="utf-8") as f:
        json.dump(receipt, f)

    current = client.get_current_ledger_entry(collection_id="py-sdk")
    check(current["contents"] == "hello from the official Python SDK", "current entry")

    for i in range(30):
        client.create_ledger_entry({"contents": f"py entry {i}"}, collection_id="py-list")
    last = client.begin_create_ledger_entry({"contents": "py last"}, collection_id="py-list")
    last.result()
    items = list(client.list_ledger_entries(collection_id="py-list"))
    check(len(items) == 31, f"list_ledger_entries returned {len(items)} of 31")

    cols = [c["collectionId"] for c in client.list_collections()]
    check("py-sdk" in cols and "py-list" in cols, f"list_collections: {cols}")

    # Collection ids with bytes this client does not give back as they were when it follows a
    # nextLink (it decodes the link's query and sends the values raw: '+' reads as a space, '&'
    # and '#' cut the value, '%' starts an escape). Two entries more than a page window (1,000
    # seqnos) apart, and more than a page of collections (1,000): both listings must be whole.
    odd = "py+odd &#%41/\u00e9"
    client.begin_create_ledger_entry({"contents": "odd first"}, collection_id=odd).result()
    fills = ["py+fill&%d#%%" % i for i in range(1001)]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda c: client.create_ledger_entry({"contents": c}, collection_id=c), fills))
    client.begin_create_ledger_entry({"contents": "odd last"}, collection_id=odd).result()
    got = [e["contents"] for e in
           itertools.islice(client.list_ledger_entries(collection_id=odd), 10)]
    check(got == ["odd first", "odd last"], f"list_ledger_entries of {odd!r}: {got}")
    # bounded: a server that lost its place would send the client round the first page for ever
    cols = [c["collectionId"] for c in itertools.islice(client.list_collections(), 20000)]
    check(len(cols) == len(set(cols)) and set(fills) <= set(cols) and odd in cols,
          f"list_collections after {len(fills)} more: {len(cols)} listed, {len(set(cols))} "
          f"distinct, {len(set(fills) & set(cols))} of the new ones")

    uid = "11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00"
    user = client.create_or_update_user(uid, {"assignedRole": "Contributor"})
    check(user["assignedRole"] == "Contributor" and user["userId"] == uid, f"create user: {user}")
    check(client.get_user(uid)["assignedRole"] == "Contributor", "get user")
    client.delete_user(uid)
    try:
        client.get_user(uid)
        check(False, "deleted user still found")
    except ResourceNotFoundError:
        check(True, "deleted user gone")

    quotes = client.get_enclave_quotes()
    check(quotes["currentNodeId"] in quotes["enclaveQuotes"], "enclave quotes")
    check(isinstance(list(client.list_consortium_members()), list), "members")
    check("script" in client.get_constitution(), "constitution")


try:
    main()
except Exception as e:  # report, then fail
    import traceback

    traceback.print_exc()
    T.failed += 1
T.finish()
